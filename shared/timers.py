"""``@configured_timer(key, default)``: a nameko ``@timer`` whose interval is configuration.

The interval is read when the service starts: the top-level config key (``ORDERS_TIMER_SECONDS:
${ORDERS_TIMER_SECONDS:3.0}``) or, failing that, the same key under the service's ``RULES``
(``reservation_sweep_seconds``), else ``default`` seconds.
"""

from __future__ import annotations

from nameko.timer import Timer

from shared.config import rules


class ConfiguredTimer(Timer):
    def __init__(self, key: str, default: float, **kwargs):
        self.key = key
        super().__init__(interval=default, **kwargs)

    def setup(self):
        config = self.container.config
        value = config.get(self.key) or rules(config).get(self.key)
        if value:
            self.interval = float(value)
        super().setup()


configured_timer = ConfiguredTimer.decorator
