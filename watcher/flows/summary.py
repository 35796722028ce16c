"""What the flow window says about one (workload, registered domain): the figures the flow
model reads (watcher/flows/model.py) and the flow window turns into the channel record."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PairSummary:
    """What the flow detectors read about one (workload, domain) at time `at`."""

    at: float
    workload: str
    domain: str
    source: str  # the pod with most requests (or the workload's only client)
    pods: int
    short_new: int  # new names in the short window
    long_new: int  # new names in the long window
    long_requests: int
    encoded_new: int  # encoded-looking new names in the long window
    address_new: int  # new names with an IPv4 address in them, long window
    est_bytes: float
    payload_mean: float
    payload_std: float
    entropy_mean: float
    entropy_std: float
    score_mean: float
    requests: int
    responses: int
    nxdomain_share: float
    empty_share: float
    address_share: float  # answers that carried addresses
    distinct_addresses: int  # how many different addresses those answers held
    data_answer_share: float
    data_qtype_share: float
    denied_share: float
    unanswered_share: float
    gap_mean: float
    gap_cv: float  # inter-arrival spread / mean: machines are regular, people are not
    prevalence: int  # workloads that queried this domain
    samples: list[str]
    first: float
    last: float
    qtypes: dict[str, int]
    query_means: tuple[float, ...] = (0.0,) * 7  # watcher.flows.model.QUERY_FEATURES
    shared: int = 0  # names asked by two or more pods
    short_requests: int = 0
    short_encoded: int = 0
    short_bytes: float = 0.0
    entropy_max: float = 0.0
    longest: int = 0
    odd: bool = False
    encoded_clients: int = 0  # workloads asking encoded-looking names under this domain
    client_domains: int = 0  # domains this workload resolves (its pairs held)
    reask_slots: int = 0  # steps of the long window in which a name was asked again
    reask_steps: tuple[float, ...] = ()  # their starts (the latest flows' REASKS_KEPT)
    reasked_names: int = 0  # names asked again (counted where some name may be a host)
    pod_names: tuple[str, ...] = ()  # most active first
    # The day window (0: off, the data does not reach back far enough): the long window's
    # figures plus the older hours' (PairState.day).
    day_seconds: float = 0.0
    day_requests: int = 0
    day_new: int = 0
    day_encoded: int = 0
    day_bytes: float = 0.0
    # The one-off names (not hosts, see watcher.channel.Hosts) per window: (names, encoded-
    # looking, queries); None: no name is a host, the window's figures are the one-off ones.
    short_one_off: tuple[int, int, int] | None = None
    long_one_off: tuple[int, int, int] | None = None
    day_one_off: tuple[int, int, int] | None = None
    hosts: tuple[int, int, int] = (0, 0, 0)  # the widest window's hosts: shared, spread, answered

    @property
    def real_address_share(self) -> float:
        """The address share, discounted when one or two addresses answer for every name: a
        wildcard record on an attacker's server, not hosts of their own."""
        names = max(min(self.long_new, 1024), 1)
        spread = min(1.0, self.distinct_addresses / (0.3 * names))
        return self.address_share * spread

    @property
    def unique_ratio(self) -> float:
        return self.long_new / self.long_requests if self.long_requests else 0.0
