"""The demo shop as an embedded system of inoculate (entry point ``inoculate.systems: shop``).

The glue between the engine's system protocol and the shop's client: the shop's services
themselves never import the framework.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from inoculate.demo.shop import client
from inoculate.demo.shop.knobs import ShopKnobs
from inoculate.model.errors import EmbeddedSystemError
from inoculate.model.processes import is_alive
from inoculate.systems.registry import RunningSystem, ServiceProcess

__all__ = ["ShopSystem"]


class ShopSystem:
    """The demo shop (``demo/shop``): gateway, catalog replicas and orders under a supervisor."""

    name = "shop"

    @property
    def knobs_model(self) -> type[BaseModel]:  # type: ignore[override]
        """The shop's resilience knobs model."""
        return ShopKnobs

    def start(self, state_dir: Path, knobs: BaseModel, timeout_s: float) -> RunningSystem:
        """Start the shop's supervisor and wait until every service is healthy."""
        try:
            return client.start_shop(state_dir, knobs, timeout_s=timeout_s, tie_to_caller=True)
        except Exception as exc:
            raise EmbeddedSystemError(f"the demo shop did not start: {exc}") from exc

    def processes(self, state_dir: Path, service: str) -> list[ServiceProcess]:
        """Return the shop instances of a service (``catalog``) or one instance (``catalog-0``)."""
        state = self._state(state_dir)
        found = [
            ServiceProcess(i.service, i.instance, i.pid, i.state)
            for i in state.services.values()
            if service in (i.service, i.instance)
        ]
        if not found:
            known = sorted({i.service for i in state.services.values()} | set(state.services))
            raise EmbeddedSystemError(
                f"the shop has no service '{service}'; expected one of {known}"
            )
        return found

    def all_processes(self, state_dir: Path) -> list[ServiceProcess]:
        """Return every instance of the shop."""
        state = self._state(state_dir)
        return [
            ServiceProcess(i.service, i.instance, i.pid, i.state) for i in state.services.values()
        ]

    def start_instance(self, state_dir: Path, instance: str) -> None:
        """Ask the shop's supervisor to start an instance."""
        client.start_instance(state_dir, instance)

    def restart_instance(self, state_dir: Path, instance: str) -> None:
        """Ask the shop's supervisor to restart an instance."""
        client.restart_instance(state_dir, instance)

    def is_running(self, state_dir: Path) -> bool:
        """Whether the shop's supervisor in ``state_dir`` is alive."""
        try:
            state = self._state(state_dir)
        except (EmbeddedSystemError, OSError, ValueError):
            return False
        return is_alive(int(state.supervisor_pid))

    @staticmethod
    def _state(state_dir: Path) -> Any:
        try:
            return client.read_state(state_dir)
        except FileNotFoundError as exc:
            raise EmbeddedSystemError(
                f"no running shop in {state_dir} (state.json missing): is the system up?"
            ) from exc
