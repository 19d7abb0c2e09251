"""Sending variations back to Reaper as takes, through the Reaper Listener script (docs/osc.md).

    /vampbridge/take  id reply_port token  item_guid output_path recipe_path take_name
      -> /vampbridge/take_added id ok message

Blocking (it waits for each reply), so the window calls it with `workers.run_in_background`.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LISTENER_PORT = 9072


@dataclass
class TakeOutcome:
    take_name: str
    ok: bool
    message: str


def send_takes(takes, host: str = "127.0.0.1", port: int = DEFAULT_LISTENER_PORT, token: str = "",
               timeout_s: float = 3.0) -> list[TakeOutcome]:
    """`takes`: (item_guid, output_path, recipe_path, take_name) tuples. One outcome per take; a
    take that got no answer says that the Listener script is probably not running."""
    from bridge.osc.client import OscClient

    outcomes = []
    with OscClient("127.0.0.1" if host == "localhost" else host, port, token=token, name="companion") as client:
        for item_guid, output_path, recipe_path, take_name in takes:
            request_id = client.request("take", item_guid, output_path, recipe_path, take_name)
            try:
                reply = client.wait_for(None, request_id, timeout_s=timeout_s)
            except TimeoutError:
                outcomes.append(TakeOutcome(take_name, False,
                                            f"Reaper did not answer on port {port}: run the VampBridge "
                                            "Listener script in Reaper (Actions > VampBridge: Listener)"))
                continue
            if reply.name == "take_added":
                ok = bool(reply.args[1]) if len(reply.args) > 1 else False
                message = str(reply.args[2]) if len(reply.args) > 2 else ""
                outcomes.append(TakeOutcome(take_name, ok, message))
            else:  # error: code, message
                outcomes.append(TakeOutcome(take_name, False, " ".join(str(a) for a in reply.args[1:])))
    return outcomes
