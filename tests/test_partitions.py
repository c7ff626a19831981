"""Rules partitions (``rules.sites``): the configuration's checks, a partition's inventory and subscriptions,
and how its system alerts name it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from coldchain.config import Settings, config_warnings
from coldchain.contract.parser import MessageParser
from coldchain.core.system_rules import DiskSpace, FutureTimestamps, Link, RoleHealth, StateReset
from coldchain.roles.rules_worker import partition_fact, system_limits

INVENTORY: dict[str, Any] = {
    "units": [{"id": "fridge-n", "site": "north"}, {"id": "fridge-s", "site": "south"}],
    "sensors": [
        {"id": "t-n", "unit": "fridge-n", "kind": "temperature"},
        {"id": "s-n", "unit": "fridge-n", "kind": "shake"},
        {"id": "t-s", "unit": "fridge-s", "kind": "temperature"},
    ],
    "scanners": [{"id": "scan-n", "site": "north"}, {"id": "scan-s", "site": "south"}],
}


def settings(sites: list[str]) -> Settings:
    return Settings(**INVENTORY, rules={"sites": sites, "client_id": "ccr-north"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sites", "problem"),
    [
        (["nowhere"], "rules.sites[0]: no unit is at site 'nowhere'"),  # a typo judges nothing: an error
        (["north", "north"], "rules.sites[1]: site 'north' listed twice"),
    ],
)
def test_sites_must_be_sites_units_stand_in(sites: list[str], problem: str) -> None:
    """A rules.sites entry no unit stands in, or listed twice, is a configuration error naming it."""
    with pytest.raises(ValidationError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        settings(sites)


def test_check_config_warns_which_sites_other_partitions_must_judge() -> None:
    """A partition warns about the sites it leaves to others (it cannot see their configuration)."""
    warnings = [w for w in config_warnings(settings(["north"])) if w.startswith("rules.sites")]
    assert len(warnings) == 1 and "judges only north; south must be in exactly one other partition" in warnings[0]
    assert not [w for w in config_warnings(settings(["north", "south"])) if w.startswith("rules.sites")]


def test_a_partition_sees_only_its_sites() -> None:
    """The partition's inventory: its sites' units, their sensors, its sites' scanners; no partition: all."""
    part = settings(["north"]).rules_partition()
    assert [u.id for u in part.units] == ["fridge-n"]
    assert [s.id for s in part.sensors] == ["t-n", "s-n"]
    assert [s.id for s in part.scanners] == ["scan-n"]
    whole = settings([])
    assert whole.rules_partition() is whole


def test_a_partitions_frozen_inventory_is_its_own_even_after_the_whole_one_was_built() -> None:
    """The frozen inventory is built once per settings; a partition (a copy) builds its own, not the whole's."""
    north = settings(["north"])
    assert sorted(north.frozen_inventory().units) == ["fridge-n", "fridge-s"]
    assert north.frozen_inventory() is north.frozen_inventory()
    part = north.rules_partition()
    assert sorted(part.frozen_inventory().units) == ["fridge-n"]
    assert sorted(part.frozen_inventory().sensors) == ["s-n", "t-n"]


def test_a_partition_subscribes_to_its_own_inputs() -> None:
    """Own sensors' and scanners' topics one by one, the bag topics (no unit in them), nothing of other sites."""
    parser = MessageParser(settings(["north"]).rules_partition())
    assert set(parser.own_subscriptions) == {
        "coldchain/sensors/t-n/temperature",
        "coldchain/sensors/s-n/shake",
        "coldchain/bags/+/events",
        "coldchain/api/bags/+/events",
        "coldchain/scanners/scan-n/bags/+/events",
    }


@pytest.mark.parametrize(
    ("fact", "named"),
    [
        (Link("store_unreachable", "influx", False), Link("store_unreachable", "influx@ccr-north", False)),
        # the broker link is already the partition's own client id
        (Link("broker_unreachable", "ccr-north", False), Link("broker_unreachable", "ccr-north", False)),
        (DiskSpace("/var/lib/coldchain", 1, 2, 3), DiskSpace("/var/lib/coldchain@ccr-north", 1, 2, 3)),
        (RoleHealth("rules", False, "x"), RoleHealth("rules@ccr-north", False, "x")),
        (StateReset("outbox", "lost"), StateReset("outbox@ccr-north", "lost")),
        (FutureTimestamps(3), FutureTimestamps(3)),  # clock_skew's subject comes from the limits
    ],
)
def test_partition_system_facts_name_the_partition(fact: Any, named: Any) -> None:
    """Each partition's system alerts are its own: subjects end in @<rules.client_id>, never shared."""
    assert partition_fact(fact, "ccr-north") == named


def test_clock_skew_subject_names_the_partition() -> None:
    """A partition's clock_skew alert is ts_in_future@<client id>; unpartitioned, ts_in_future as before."""
    assert system_limits(settings(["north"])).skew_subject == "ts_in_future@ccr-north"
    assert system_limits(settings([])).skew_subject == "ts_in_future"
