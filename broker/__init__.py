"""Broker gateway: the BrokerGateway protocol, its alpaca-py implementation, error mapping."""
