"""Live collection: read-only probes of the cluster of a kube context, scoped by symptom and run in parallel.

`registry` declares the probes, `plan` picks the ones a symptom needs,
`collect` runs them with a bound and a timeout each and saves bundles, and
`cli_options` adds `mesh-doctor scan --live`. Nothing here changes the
cluster, except the packet capture of `capture`, which runs only after the
engineer confirms it.
"""

DEFAULT_CONCURRENCY = 8
DEFAULT_PROBE_TIMEOUT_S = 20.0
DEFAULT_LOG_SINCE = "1h"
