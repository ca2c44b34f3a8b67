"""A program that waits on a child process: ``sleep D`` run and awaited, under every model.

    pytest bench/ --bench-fetch examples.sleep_subprocess:make_fetch --bench-requests 50 --bench-delay-ms 200

Each call starts ``sleep`` and waits for it to exit: the wait is the child's, the cost around
it (fork and exec, the pipe or signal that says it ended) the model's.

Where gevent's patch reaches it: ``monkey.patch_all()`` replaces ``subprocess`` with
``gevent.subprocess``, whose wait is the hub's child watcher (SIGCHLD), so the greenlets
wait together. It does not reach ``os.system`` or ``os.waitpid`` called before the patch
(or through a C extension): those block the hub, and the greenlets' children run one at a
time. asyncio awaits ``create_subprocess_exec``; trio ``trio.run_process``.
"""

from __future__ import annotations

import subprocess

# A child that has not exited this long after its sleep is an error, not a hang.
EXIT_MARGIN_S = 5.0


def make_fetch(kind: str, delay_s: float, in_flight: int):
    command = ["sleep", f"{delay_s:g}"]
    timeout_s = delay_s + EXIT_MARGIN_S
    if kind == "blocking":

        def fetch():
            return subprocess.run(command, check=True, timeout=timeout_s).returncode

        return fetch
    if kind == "asyncio":
        import asyncio

        async def fetch():
            process = await asyncio.create_subprocess_exec(*command)
            try:
                status = await asyncio.wait_for(process.wait(), timeout_s)
            finally:
                if process.returncode is None:
                    process.kill()
            if status:
                raise subprocess.CalledProcessError(status, command)
            return status

        return fetch
    if kind == "trio":
        import trio

        async def fetch():
            with trio.fail_after(timeout_s):
                return (await trio.run_process(command)).returncode

        return fetch
    return None
