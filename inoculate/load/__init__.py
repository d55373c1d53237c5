"""Load: Locust in its own process (``driver``), with our SLI plugin (``locust_plugin``).

Never ``import locust`` in the runner's process: it gevent-patches everything it touches.
"""
