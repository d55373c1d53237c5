"""What an unattended production run needs beyond an experiment: the canary policy's parts.

``policy``: the policy file's model and loader. ``windows``: allowed windows and freeze dates.
``kill_switch``: the file, environment and HTTP levers checked before and during a run.
``preflight``: the webhooks that must approve the resolved targets. ``lock``: one canary per
scope (a file lock, or a Kubernetes ``Lease``). ``audit``: the hash-chained audit log.
``inoculate.modes.canary`` puts them together.
"""
