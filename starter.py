"""durable-trader command line: dev stack, settings, trades, schedules, status and control.

Run `python starter.py --help`. The first run creates .venv and installs dependencies.
"""

from devstack.bootstrap import ensure_environment

if __name__ == "__main__":
    ensure_environment()
    from cli.main import main
    from devstack.exit import hard_exit

    hard_exit(main())
