"""``coldchain bag dilute|start|complete|discard``: publish a bag event and wait for the broker's acknowledgement."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from coldchain.cli.loading import load_or_exit
from coldchain.config import no_config_loaded
from coldchain.contract.parser import MessageParser, RejectedMessage
from coldchain.contract.topics import Topics, id_problem
from coldchain.core.times import format_time

BAG_ACTIONS: dict[str, str] = {
    "dilute": "diluted",
    "start": "infusion_started",
    "complete": "infusion_completed",
    "discard": "discarded",
}


def cmd_bag(args: argparse.Namespace) -> int:
    """Publish a bag event (the contract's payload) and wait for the broker's acknowledgement."""
    from coldchain.adapters.mqtt import MqttError, publish_once  # paho only for this command

    settings = load_or_exit(args.config)
    if (unloaded := no_config_loaded(args.config, settings)) is not None:
        print(f"not sent: {unloaded}", file=sys.stderr)
        return 2
    body: dict[str, object] = {"ts": format_time(datetime.now(UTC)), "event": BAG_ACTIONS[args.action], "by": args.by}
    for key in ("unit", "lot", "product"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    if (problem := id_problem(args.bag_id)) is not None:
        print(f"not sent: {problem}", file=sys.stderr)
        return 2
    try:  # refuse here what ingest would reject, with the same words
        MessageParser(settings).bag_event_body(args.bag_id, body)
    except RejectedMessage as exc:
        print(f"not sent: {exc.detail}", file=sys.stderr)
        return 2
    topic = Topics(settings.mqtt.topic_prefix).bag_events(args.bag_id)
    try:
        publish_once(settings.mqtt, topic, json.dumps(body).encode())
    except MqttError as exc:
        print(f"not sent: {exc}", file=sys.stderr)
        return 1
    print(f"{topic} {json.dumps(body)}")
    return 0
