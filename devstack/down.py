"""`dev down`: stop a running dev stack through its supervisor, or what a crashed one left."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from devstack.config import DevConfig
from devstack.postgres import EmbeddedPostgres
from devstack.processes import pid_alive, stop_process, wait_until
from devstack.state import clear_state, read_state
from settings import Settings

# The supervisor stops the stack within 10 s of SIGTERM; past this it is stuck, and its
# recorded processes are stopped directly.
SUPERVISOR_STOP_S = 30


def stop_recorded_stack(settings: Settings, config: DevConfig, out: Callable[[str], None]) -> bool:
    """Stop a running supervisor, or the leftovers of a crashed one; False if nothing ran."""
    state = read_state(settings.state_dir)
    stopped_any = False
    if state is not None and pid_alive(state.supervisor_pid):
        out(f"stopping the dev stack (supervisor pid {state.supervisor_pid}) ...")
        os.kill(state.supervisor_pid, signal.SIGTERM)
        if not wait_until(lambda: not pid_alive(state.supervisor_pid), SUPERVISOR_STOP_S):
            out(
                f"supervisor did not stop in {SUPERVISOR_STOP_S} s; stopping its processes directly"
            )
        stopped_any = True
    if state is not None:
        for component in state.components:
            if component.managed and component.pid and pid_alive(component.pid):
                if component.name == "postgres":
                    continue
                stop_process(component.pid)
                out(f"  stopped leftover {component.name} (pid {component.pid})")
                stopped_any = True
    postgres = EmbeddedPostgres(config.resolve(config.postgres.data_dir), config.postgres.port)
    if postgres.pid() is not None:
        postgres.stop()
        out("  stopped embedded PostgreSQL")
        stopped_any = True
    clear_state(settings.state_dir)
    return stopped_any
