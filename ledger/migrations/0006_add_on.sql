-- Add-ons (issue 12): a trade may buy more of its symbol after the entry, as an OTO that
-- carries the trade's stop. Such an order is recorded under its own role.
ALTER TABLE orders DROP CONSTRAINT orders_role_check;
ALTER TABLE orders ADD CONSTRAINT orders_role_check
    CHECK (role IN ('entry', 'stop', 'take_profit', 'exit', 'add_on'));
