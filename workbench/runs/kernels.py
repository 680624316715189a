"""Kernels for notebook runs: safe in parallel, and always this environment's Python.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    pass




KERNEL_NAME = "python3"


@functools.cache
def _kernel_classes():
    """A kernel manager safe for parallel runs, and a spec manager that pins ``python3`` to this interpreter.

    - ``transport="ipc"`` with a socket directory of its own per kernel: TCP ports picked by several kernels
      at once race (``ZMQError: Address already in use``); a shared ipc directory is worse still.
    - ``python3`` resolves to ``sys.executable`` (the venv's python, where the workbench is installed), not to
      whatever ``python3`` kernelspec a user directory happens to hold.
    """
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    class EnvKernelSpecManager(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            if kernel_name in (KERNEL_NAME, "python"):
                from ipykernel.kernelspec import RESOURCES

                return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                  display_name="Python 3 (workbench)", language="python", resource_dir=RESOURCES,
                                  metadata={"debugger": True})
            return super().get_kernel_spec(kernel_name)

    class IsolatedKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any):
            sock_dir = tempfile.mkdtemp(prefix="wbk-")  # short: unix socket paths max out near 100 bytes
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", os.path.join(sock_dir, "k"))
            kwargs.setdefault("connection_file", os.path.join(sock_dir, "kernel.json"))
            kwargs.setdefault("kernel_spec_manager", EnvKernelSpecManager())
            super().__init__(**kwargs)
            self._wb_sock_dir = sock_dir

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            try:
                await super()._async_cleanup_resources(restart=restart)
            finally:
                if not restart:
                    shutil.rmtree(self._wb_sock_dir, ignore_errors=True)

    return EnvKernelSpecManager, IsolatedKernelManager


def isolated_kernel_manager_class():
    return _kernel_classes()[1]
