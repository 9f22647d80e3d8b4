"""``run(root)``: the entry point for daemon, pod and library use."""

from __future__ import annotations

from .component import Component
from .errors import StateError
from .events import Start


async def run(root: Component) -> int:
    """Start the tree, wait for a ``Stop`` to complete and the tree to be idle.

    Then cancels the tree's remaining background tasks and timers and returns the exit
    code recorded with ``set_exit_code`` (0 if none). Installs nothing global (signal
    handlers are the caller's business: ``loop.add_signal_handler(SIGTERM,
    lambda: root.fire(Stop()))``). If ``run`` itself is cancelled, the tree's pipelines
    and tasks are cancelled and ``CancelledError`` propagates.
    """
    tree = root.component_tree
    if root.parent is not None:
        raise StateError(f"run() needs the root of a tree, {root!r} has a parent")
    if tree.started:
        raise StateError(f"{root!r} has already been started")
    root.fire(Start())
    try:
        await tree.wait_stopped()
        await tree.wait_idle()
    except BaseException:
        tree.cancel_pipelines()
        await tree.tasks.shutdown()
        raise
    await tree.tasks.shutdown()
    await tree.wait_idle()
    return tree.exit_code
