"""Sending variations back to Reaper as takes, through the Reaper Listener script (docs/osc.md).

    /vampbridge/ping  id reply_port token                 -> /vampbridge/pong id
    /vampbridge/take  id reply_port token  item_guid output_path recipe_path take_name
      -> /vampbridge/take_added id ok message

`send_takes` asks the Listener once whether it is there (a short `ping`) and stops with one
`ListenerUnavailable` when it is not, instead of waiting for every take in turn. It blocks (it
waits for each reply), so the window calls it with `workers.run_in_background`, and it stops
between takes when `should_cancel()` turns true.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LISTENER_PORT = 9072
PING_TIMEOUT_S = 1.0
TAKE_TIMEOUT_S = 5.0  # adding a take makes Reaper build peaks: give it a little longer than a ping


class ListenerUnavailable(ConnectionError):
    """Reaper's Listener script did not answer; nothing was sent."""


@dataclass
class TakeOutcome:
    take_name: str
    ok: bool
    message: str


def listener_missing_message(port: int) -> str:
    return (f"Reaper did not answer on port {port}: run the VampBridge Listener script in Reaper "
            "(Actions > VampBridge - Listener), and check that Edit > Settings… names the same listener port")


def send_takes(takes, host: str = "127.0.0.1", port: int = DEFAULT_LISTENER_PORT, token: str = "",
               timeout_s: float = TAKE_TIMEOUT_S, ping_timeout_s: float = PING_TIMEOUT_S,
               should_cancel=None) -> list[TakeOutcome]:
    """`takes`: (item_guid, output_path, recipe_path, take_name) tuples. Returns one outcome per
    take sent (fewer when cancelled). Raises ListenerUnavailable when the Listener does not answer
    the ping; a take that gets no answer later ends the send, the rest marked not sent."""
    from bridge.osc.client import OscClient

    outcomes = []
    with OscClient("127.0.0.1" if host == "localhost" else host, port, token=token, name="companion") as client:
        try:
            client.wait_for(None, client.request("ping"), timeout_s=ping_timeout_s)
        except TimeoutError:
            raise ListenerUnavailable(listener_missing_message(port)) from None
        for n, (item_guid, output_path, recipe_path, take_name) in enumerate(takes):
            if should_cancel is not None and should_cancel():
                break
            request_id = client.request("take", item_guid, output_path, recipe_path, take_name)
            try:
                reply = client.wait_for(None, request_id, timeout_s=timeout_s)
            except TimeoutError:
                message = "not sent: " + listener_missing_message(port)
                outcomes.extend(TakeOutcome(t[3], False, message) for t in takes[n:])
                break
            if reply.name == "take_added":
                ok = bool(reply.args[1]) if len(reply.args) > 1 else False
                message = str(reply.args[2]) if len(reply.args) > 2 else ""
                outcomes.append(TakeOutcome(take_name, ok, message))
            else:  # error: code, message
                outcomes.append(TakeOutcome(take_name, False, " ".join(str(a) for a in reply.args[1:])))
    return outcomes
