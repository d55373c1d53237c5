"""The open load model: tasks arrive at a fixed rate, whatever the answers. LOCUST SUBPROCESS ONLY.

!!! NEVER IMPORT THIS MODULE FROM THE RUNNER, A PROBE OR A TEST PROCESS !!!
It imports ``locust`` (which gevent-monkey-patches the process). ``inoculate.load.driver``
hands it to Locust as a locustfile (``-f <locustfile>,<plugin>,<this file>``) and names
:class:`OpenArrivals` as the only User class to run, only when ``load.model`` is ``open``.

Why: Locust's users are a *closed* model. Each user waits for its answer before it sends
its next request, so a frozen backend stops the load itself, and an outage during which
every user is stuck shows as a handful of failures (coordinated omission). In the open
model, tasks *arrive* on a fixed schedule, ``rate_rps`` per second, however slow the
answers are, like the independent people who use a real service.

How: each Locust process that runs users runs one :class:`OpenArrivals` (the driver gives
it the process's share of the rate and of the in-flight bound). For each arrival it draws
one task of the locustfile's User classes — a class by its ``weight``, then one of that
class's ``@task`` functions by the task weights — and runs it in a greenlet of its own, on
an idle instance of that class (instances are created on demand, one per task in flight,
each with its own connection, and reused). The task's first request therefore starts at
the arrival time. When ``max_in_flight`` tasks are in flight, an arrival is **dropped and
reported** (the plugin counts it per second as ``dropped_arrivals``), never queued: a queue
would be coordinated omission again. A task makes its requests one after another, so the
tasks in flight are the requests in flight.

What this asks of a locustfile: nothing new. Its User classes and ``@task`` functions are
reused as they are (``--tags`` and ``user_classes`` select them as in the closed model);
``wait_time`` is ignored, as arrivals pace the load; ``on_start`` runs once per instance
before its first task and ``on_stop`` is not called; a task must not call ``self.wait()``;
a task that is a ``TaskSet`` is refused (Locust stops with the reason in ``locust.log``).
"""

from __future__ import annotations

import sys

if "locust" not in sys.modules:
    raise ImportError(
        "inoculate.load.open_model is loaded only inside the Locust subprocess "
        "(locust -f <locustfile>,<plugin>,<this file> OpenArrivals); "
        "import inoculate.load.driver and use LocustLoad instead"
    )

import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import gevent
from gevent import GreenletExit
from gevent.pool import Group
from locust import User, constant, task
from locust.env import Environment
from locust.exception import (
    InterruptTaskSet,
    RescheduleTask,
    RescheduleTaskImmediately,
    StopUser,
)
from locust.user.task import TaskSet, filter_tasks_by_tags

from inoculate.load.lifetime import (
    OPEN_MAX_IN_FLIGHT_ENV,
    OPEN_RATE_ENV,
    OPEN_TAGS_ENV,
    OPEN_USER_CLASSES_ENV,
)
from inoculate.load.recording import DROPPED_ARRIVAL_EVENT

__all__ = ["OpenArrivals"]

logger = logging.getLogger(__name__)

# A task that ends this way ended on purpose (Locust's own control flow), not with an error.
_QUIET_ENDINGS = (StopUser, RescheduleTask, RescheduleTaskImmediately, InterruptTaskSet)
_LAG_WARNING_S = 1.0


class OpenArrivalsError(Exception):
    """The locustfile cannot be run under the open model; the message says why."""


@dataclass(frozen=True)
class _Choice:
    user_class: type[User]
    task: Callable[[User], Any]


class OpenArrivals(User):
    """Starts the locustfile's tasks at a fixed rate, each in a greenlet of its own."""

    wait_time = constant(0)

    @task
    def arrive(self) -> None:
        """Run the arrival schedule until Locust stops this user (it never returns)."""
        try:
            schedule = _Schedule.from_environment(self.environment)
        except OpenArrivalsError as exc:
            logger.error("inoculate open model: %s", exc)
            if self.environment.runner is not None:
                self.environment.runner.quit()
            raise StopUser() from exc
        schedule.run()


class _Schedule:
    """Arrivals at ``rate_rps`` on a fixed schedule, at most ``max_in_flight`` at a time."""

    def __init__(
        self,
        environment: Environment,
        choices: list[_Choice],
        weights: list[float],
        rate_rps: float,
        max_in_flight: int,
    ) -> None:
        self.environment = environment
        self.rate_rps = rate_rps
        self.max_in_flight = max_in_flight
        self._choices = choices
        self._cumulative = list(accumulate(weights))
        self._idle: dict[type[User], list[User]] = {}
        self._busy = 0
        self._dropped = getattr(environment.events, DROPPED_ARRIVAL_EVENT, None)
        self._last_lag_warning = 0.0

    @classmethod
    def from_environment(cls, environment: Environment) -> _Schedule:
        rate_rps = float(os.environ.get(OPEN_RATE_ENV, "0") or 0)
        max_in_flight = int(os.environ.get(OPEN_MAX_IN_FLIGHT_ENV, "0") or 0)
        if not (math.isfinite(rate_rps) and rate_rps > 0) or max_in_flight < 1:
            raise OpenArrivalsError(
                f"{OPEN_RATE_ENV} and {OPEN_MAX_IN_FLIGHT_ENV} must be positive "
                "(the driver sets them from load.rate_rps and load.max_in_flight)"
            )
        choices, weights = _choices(environment)
        return cls(environment, choices, weights, rate_rps, max_in_flight)

    def run(self) -> None:
        group = Group()
        interval_s = 1.0 / self.rate_rps
        start = time.monotonic()
        arrivals = 0
        try:
            while True:
                arrivals += 1
                due = start + arrivals * interval_s
                delay = due - time.monotonic()
                # Behind schedule (the process was busy), the due arrivals start at once:
                # skipping them would hide exactly the moments the load matters.
                gevent.sleep(max(0.0, delay))
                if -delay > _LAG_WARNING_S:
                    self._warn_lag(-delay)
                self._arrive(group)
        finally:
            group.kill(block=False)

    def _arrive(self, group: Group) -> None:
        if self._busy >= self.max_in_flight:
            if self._dropped is not None:
                self._dropped.fire(at=time.time())
            return
        choice = random.choices(self._choices, cum_weights=self._cumulative)[0]
        idle = self._idle.get(choice.user_class)
        instance = idle.pop() if idle else None
        self._busy += 1
        group.spawn(self._run_task, choice, instance)

    def _run_task(self, choice: _Choice, instance: User | None) -> None:
        healthy = True
        try:
            if instance is None:
                instance = choice.user_class(self.environment)
                instance.on_start()
            choice.task(instance)
        except _QUIET_ENDINGS:
            pass
        except GreenletExit:
            healthy = False
            raise
        except Exception as exc:
            healthy = instance is not None
            logger.error("open model task %s failed: %r", _name(choice), exc)
            self.environment.events.user_error.fire(
                user_instance=instance, exception=exc, tb=exc.__traceback__
            )
        finally:
            self._busy -= 1
            if healthy and instance is not None:
                self._idle.setdefault(choice.user_class, []).append(instance)

    def _warn_lag(self, lag_s: float) -> None:
        now = time.monotonic()
        if now - self._last_lag_warning >= 10:
            self._last_lag_warning = now
            logger.warning(
                "inoculate open model: %.1f s behind its arrival schedule (the load "
                "generator is saturated; add processes or lower rate_rps)",
                lag_s,
            )


def _choices(environment: Environment) -> tuple[list[_Choice], list[float]]:
    """Every (User class, task) of the locustfile with its probability weight."""
    classes = _user_classes(environment)
    tags = {t for t in os.environ.get(OPEN_TAGS_ENV, "").split(",") if t}
    choices: list[_Choice] = []
    weights: list[float] = []
    for user_class in classes:
        if tags:
            filter_tasks_by_tags(user_class, tags=tags)
        tasks = list(user_class.tasks)
        for one in tasks:
            if isinstance(one, type) and issubclass(one, TaskSet):
                raise OpenArrivalsError(
                    f"{user_class.__name__} runs the TaskSet {one.__name__}: the open model "
                    "reuses @task functions of User classes only"
                )
            # Locust lists a task once per unit of its weight: each entry is equally likely.
            choices.append(_Choice(user_class, one))
            weights.append(float(user_class.weight) / len(tasks))
        if environment.host:
            user_class.host = environment.host  # what Locust's runner does for its users
    if not choices:
        raise OpenArrivalsError("the locustfile has no task to run (check user_classes and tags)")
    return choices, weights


def _user_classes(environment: Environment) -> list[type[User]]:
    available = dict(environment.available_user_classes or {})
    wanted = [n for n in os.environ.get(OPEN_USER_CLASSES_ENV, "").split(",") if n]
    missing = sorted(set(wanted) - set(available))
    if missing:
        raise OpenArrivalsError(f"no User class named {', '.join(missing)} in the locustfile")
    return [
        user_class
        for name, user_class in available.items()
        if not issubclass(user_class, OpenArrivals)
        and (name in wanted if wanted else True)
        and user_class.weight > 0
    ]


def _name(choice: _Choice) -> str:
    return f"{choice.user_class.__name__}.{getattr(choice.task, '__name__', choice.task)}"
