"""The demo's HTML: small server-rendered pages, every value escaped."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from html import escape

from sessionstore.models import DeviceSessions, Principal

__all__ = ["dashboard", "login", "too_many"]

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;align-items:center;gap:16px}
header h1{font-size:17px;margin:0;flex:1} header a,header button{color:#fff}
main{max-width:880px;margin:24px auto;padding:0 16px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;padding:16px 20px;
margin:0 0 16px}
.device{display:flex;gap:16px;align-items:flex-start}
.device .info{flex:1} .device h3{margin:0 0 4px;font-size:16px}
.meta{color:#5b6475;font-size:13px} .meta td:first-child{white-space:nowrap}
.meta td+td{word-break:break-word}
.badge{background:#0b7a3e;color:#fff;border-radius:10px;padding:1px 8px;font-size:12px;
margin-left:6px}
.error{background:#fde8e8;color:#8a1c1c;padding:8px 12px;border-radius:6px}
button{font:inherit;padding:6px 12px;border-radius:6px;border:1px solid #8a1c1c;background:#fff;
color:#8a1c1c;cursor:pointer} button.primary{background:#1d5fd1;border-color:#1d5fd1;color:#fff}
header button{background:transparent;border-color:#fff8}
input{font:inherit;padding:6px 8px;border:1px solid #b8bfcc;border-radius:6px;width:100%;
box-sizing:border-box} label{display:block;margin:0 0 10px}
form.inline{display:inline} code{background:#eef0f4;padding:1px 4px;border-radius:4px}
table{border-collapse:collapse} td{padding:2px 12px 2px 0;vertical-align:top}
"""


def _page(title: str, body: str, header: str = "") -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><header><h1>sessionstore demo</h1>{header}</header>"
        f"<main>{body}</main></body></html>"
    )


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _ago(ts: float, now: float) -> str:
    seconds = max(0, int(now - ts))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def login(users: Iterable[tuple[str, str]], error: str = "", username: str = "") -> str:
    """The login page; ``users`` are the seeded (name, password) pairs shown as a hint."""
    hint = ", ".join(f"<code>{escape(u)}</code> / <code>{escape(p)}</code>" for u, p in users)
    problem = f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    body = f"""
<div class=card style="max-width:380px;margin:40px auto">
<h2 style="margin-top:0">Sign in</h2>{problem}
<form method=post action=/login>
<label>Username
<input name=username autocomplete=username value="{escape(username)}" required></label>
<label>Password <input name=password type=password autocomplete=current-password required></label>
<button class=primary type=submit>Sign in</button>
</form>
<p class=meta>Demo users: {hint}. Login attempts are rate limited per account and per IP.</p>
</div>"""
    return _page("Sign in", body)


def too_many(retry_after: str, scope: str) -> str:
    """The page of a refused login attempt (HTTP 429)."""
    what = "this account" if scope == "account" else "your address"
    message = f"Too many sign-in attempts for {what}: try again in {retry_after} s."
    return _page("Slow down", f"<div class=card><p class=error role=alert>{escape(message)}</p>"
                 "<p><a href=/login>Back to sign in</a></p></div>")  # fmt: skip


def _device_card(group: DeviceSessions, mine: bool, csrf: str, now: float) -> str:
    device = group.device
    created = min(s.created_at for s in group.sessions)
    badge = "<span class=badge>this device</span>" if mine else ""
    label = "Sign out this device" if mine else "Sign out"
    count = len(group.sessions)
    return f"""
<div class="card device" data-device="{escape(device.id)}">
<div class=info><h3>{escape(device.name or device.id)}{badge}</h3>
<table class=meta>
<tr><td>User agent</td><td>{escape(device.user_agent or "unknown")}</td></tr>
<tr><td>IP</td><td>{escape(device.ip or "unknown")}</td></tr>
<tr><td>Created</td><td>{_when(created)}</td></tr>
<tr><td>Last seen</td><td>{_when(group.last_seen_at)} ({_ago(group.last_seen_at, now)})</td></tr>
<tr><td>Sessions</td><td>{count}</td></tr>
</table></div>
<form method=post action=/devices/signout class=inline>
<input type=hidden name=csrf_token value="{escape(csrf)}">
<input type=hidden name=device_id value="{escape(device.id)}">
<button type=submit>{label}</button></form>
</div>"""


def dashboard(
    principal: Principal,
    groups: Sequence[DeviceSessions],
    my_device: str | None,
    csrf: str,
    recent: Sequence[str] = (),
) -> str:
    """The signed-in user's sessions grouped by device, with the sign-out buttons."""
    now = time.time()
    # This device first, then the others, most recently seen first.
    ordered = sorted(groups, key=lambda g: g.device.id != my_device)
    cards = "".join(_device_card(g, g.device.id == my_device, csrf, now) for g in ordered)
    others = sum(1 for g in groups if g.device.id != my_device)
    events = "".join(f"<li>{escape(line)}</li>" for line in recent)
    degraded = (
        "<p class=error>The session store is unreachable: showing what the token says.</p>"
        if principal.degraded
        else ""
    )
    body = f"""
{degraded}<div class=card><h2 style="margin:0 0 4px">Your devices</h2>
<p class=meta>Signed in as <b id=user>{escape(principal.user_id)}</b>;
{len(groups)} device(s). The protected API answers at <a href=/api/me>/api/me</a>.</p>
<form method=post action=/devices/signout-others class=inline>
<input type=hidden name=csrf_token value="{escape(csrf)}">
<button type=submit {"disabled" if not others else ""}>Sign out all other devices</button>
</form></div>
{cards}
<div class=card><h3 style="margin-top:0">Recent events</h3><ul class=meta>{events}</ul></div>"""
    header = (
        f"<span>{escape(principal.user_id)}</span><form method=post action=/logout class=inline>"
        f"<input type=hidden name=csrf_token value='{escape(csrf)}'>"
        "<button type=submit>Sign out</button></form>"
    )
    return _page("Your devices", body, header)
