"""Probes: the only code that reads from a cluster, a proxy or the network.

Every probe runs its command through `doctor.runner` and returns an
`Observation`; none of them changes state.
"""
