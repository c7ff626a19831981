"""``coldchain bag dilute|start|complete|discard``: publish a bag event and wait for the broker's acknowledgement."""

from __future__ import annotations

import argparse
import json
import sys

from coldchain.cli.loading import load_or_exit

BAG_ACTIONS: dict[str, str] = {
    "dilute": "diluted",
    "start": "infusion_started",
    "complete": "infusion_completed",
    "discard": "discarded",
}


def cmd_bag(args: argparse.Namespace) -> int:
    """Publish a bag event (the contract's payload) and wait for the broker's acknowledgement."""
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from coldchain.adapters.mqtt import MqttError, publish_once
    from coldchain.contract.messages import BagEventPayload, MessageParser, RejectedMessage
    from coldchain.core.times import format_time

    settings = load_or_exit(args.config)
    body: dict[str, object] = {"ts": format_time(datetime.now(UTC)), "event": BAG_ACTIONS[args.action], "by": args.by}
    for key in ("unit", "lot", "product"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    try:  # refuse here what ingest would reject, with the same words
        MessageParser(settings).bag_event(args.bag_id, BagEventPayload.model_validate(body))
    except ValidationError as exc:
        print(f"not sent: {exc.errors()[0]['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    except RejectedMessage as exc:
        print(f"not sent: {exc.detail}", file=sys.stderr)
        return 2
    topic = f"{settings.mqtt.topic_prefix}/bags/{args.bag_id}/events"
    try:
        publish_once(settings.mqtt, topic, json.dumps(body).encode())
    except MqttError as exc:
        print(f"not sent: {exc}", file=sys.stderr)
        return 1
    print(f"{topic} {json.dumps(body)}")
    return 0
