"""The demo's HTML: small server-rendered pages, every value escaped, phone-first CSS.

Everything works without JavaScript: a sign-out button opens a confirm page. The one
inline script only makes that a ``<dialog>``, shows times in the browser's own zone and
counts down a refused login's wait.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from html import escape

from sessionstore.demo_app.useragent import parse
from sessionstore.models import DeviceSessions, HistoryEntry, Principal

__all__ = ["NEW_DEVICE", "confirm_page", "dashboard", "login"]

NEW_DEVICE = "new_device"
"""The session data key the app sets on a sign-in from a device new to the user."""

_STYLE = """
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,sans-serif;margin:0;background:#f3f4f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 16px;display:flex;align-items:center;gap:12px}
header h1{font-size:17px;margin:0;flex:1} header form{margin:0}
header button{background:transparent;border-color:#fff9;color:#fff}
main{max-width:760px;margin:20px auto;padding:0 12px}
h2,h3{margin:0;font-size:18px;line-height:1.3} h3{font-size:16px}
.card{background:#fff;border-radius:10px;box-shadow:0 1px 3px #0002;padding:16px;margin:0 0 14px}
.top{display:flex;flex-wrap:wrap;gap:10px 16px;align-items:center;justify-content:space-between}
.top form{margin:0}
.meta,.ago,dt{color:#5b6475} .ago,time{white-space:nowrap}
.meta{font-size:14px;margin:4px 0 12px}
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:4px 16px;margin:12px 0 0;
font-size:14px} dd{margin:0;overflow-wrap:anywhere}
summary{cursor:pointer;color:#1d5fd1;font-size:13px}
details code{display:block;margin-top:4px;font-size:12px;overflow-wrap:anywhere}
code{background:#eef0f4;padding:2px 5px;border-radius:4px}
.badge{background:#0b7a3e;color:#fff;border-radius:10px;padding:1px 8px;font-size:12px;
margin-left:6px;white-space:nowrap;vertical-align:2px} .badge.new{background:#b54708}
ul.history li{margin-bottom:4px;overflow-wrap:anywhere}
.error,.notice,.warning{padding:10px 14px;border-radius:8px;margin:0 0 14px}
.error{background:#fde8e8;color:#8a1c1c} .notice{background:#e3f4e8;color:#0b5b2e}
.warning{background:#fff3cd;color:#5c4400}
button,a.button{font:inherit;font-size:14px;padding:7px 14px;border-radius:8px;cursor:pointer;
border:1px solid #b42318;background:#fff;color:#b42318;text-decoration:none;display:inline-block}
button.danger{background:#b42318;color:#fff} button.primary{background:#1d5fd1;
border-color:#1d5fd1;color:#fff;width:100%} button:disabled{opacity:.5;cursor:default}
a.button,button.plain{border-color:#b8bfcc;color:#1d2330}
input{font:inherit;padding:8px 10px;border:1px solid #b8bfcc;border-radius:8px;width:100%}
label{display:block;margin:0 0 12px}
label.check{display:flex;gap:8px;align-items:center} label.check input{width:auto;margin:0}
dialog{border:0;border-radius:12px;padding:20px;width:min(420px,calc(100vw - 32px));
box-shadow:0 8px 30px #0004} dialog::backdrop{background:#1d233088}
.actions{display:flex;flex-wrap:wrap;gap:8px;justify-content:flex-end;margin-top:16px}
ul.meta{padding-left:18px}
"""

# Progressive enhancement only: each behaviour has a server-rendered fallback.
_SCRIPT = """
for (const f of document.querySelectorAll("form[data-dialog]"))
  f.addEventListener("submit", e => {
    e.preventDefault(); document.getElementById(f.dataset.dialog).showModal(); });
for (const t of document.querySelectorAll("time[datetime]"))
  t.textContent = new Date(t.dateTime).toLocaleString([],
    {day: "numeric", month: "short", year: "numeric", hour: "numeric", minute: "2-digit",
     timeZoneName: "short"});
const left = document.getElementById("countdown");
if (left) {
  const go = document.querySelector("button[type=submit]"), end = Date.now() + left.dataset.s * 1e3;
  const tick = () => {
    const s = Math.ceil((end - Date.now()) / 1e3);
    go.disabled = s > 0;
    if (s > 0) { left.textContent = s + " s"; setTimeout(tick, 250); }
    else left.parentElement.textContent = "You can try again now.";
  };
  tick();
}
"""


def _page(title: str, body: str, header: str = "") -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)} · sessionstore demo</title><style>{_STYLE}</style></head>"
        f"<body><header><h1>sessionstore demo</h1>{header}</header><main>{body}</main>"
        f"<script>{_SCRIPT}</script></body></html>"
    )


def _banner(css: str, text: str, role: str = "status") -> str:
    return f"<p class={css} role={role}>{text}</p>" if text else ""


def when(ts: float, now: float) -> str:
    """A time with its zone (the server's; the browser's once the script ran), and its age."""
    local = time.localtime(ts)
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    text = f"{local.tm_mday} {time.strftime('%b %Y, %H:%M %Z', local)}"
    return f"<time datetime={iso}>{text}</time> <span class=ago>({ago(ts, now)})</span>"


def ago(ts: float, now: float) -> str:
    """How long ago ``ts`` was, in words ("3 minutes ago")."""
    seconds = max(0, int(now - ts))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    raise AssertionError("unreachable")


def _hidden(**fields: str) -> str:
    return "".join(
        f"<input type=hidden name={name} value='{escape(value)}'>" for name, value in fields.items()
    )


def login(
    users: Iterable[tuple[str, str]],
    error: str = "",
    username: str = "",
    *,
    notice: str = "",
    warning: str = "",
    retry_after: int = 0,
) -> str:
    """The login page; ``users`` are the seeded (name, password) pairs shown as a hint.

    With ``retry_after`` (a refused attempt) the error counts down the seconds to wait.
    """
    hint = ", ".join(f"<code>{escape(u)}</code> / <code>{escape(p)}</code>" for u, p in users)
    problem = escape(error)
    if retry_after:
        problem += f" Try again in <b id=countdown data-s={retry_after}>{retry_after} s</b>."
    body = f"""
<div style="max-width:400px;margin:32px auto">{_banner("warning", warning, "alert")}
{_banner("notice", escape(notice))}<div class=card>
<h2 style="margin-bottom:14px">Sign in</h2>{_banner("error", problem, "alert")}
<form method=post action=/login>
<label>Username
<input name=username autocomplete=username value="{escape(username)}" required></label>
<label>Password <input name=password type=password autocomplete=current-password required></label>
<label class=check><input type=checkbox name=remember value=on> Keep me signed in on this
device</label>
<button class=primary type=submit>Sign in</button>
</form>
<p class=meta style="margin:14px 0 0">Demo users: {hint}. Sign-in attempts are rate limited
per account and per IP.</p>
</div></div>"""
    return _page("Sign in", body)


def _confirm(title: str, text: str, fields: str, action: str, label: str, cancel: str) -> str:
    return f"""<h3>{title}</h3><p class=meta>{text}</p>
<form method=post action={action}>{fields}<div class=actions>{cancel}
<button type=submit class=danger>{label}</button></div></form>"""


def _device_confirm(group: DeviceSessions, mine: bool, csrf: str, cancel: str) -> str:
    name = escape(group.device.name or group.device.id)
    count = len(group.sessions)
    sessions = f"{count} session{'' if count == 1 else 's'}"
    text = (
        f"This ends this browser's {sessions} and takes you to the sign-in page."
        if mine
        else f"This ends its {sessions} at once: its next request lands on the sign-in page."
    )
    fields = _hidden(csrf_token=csrf, device_id=group.device.id)
    return _confirm(
        f"Sign out {name}?", text, fields, "/devices/signout", f"Sign out {name}", cancel
    )


def _others_confirm(others: int, csrf: str, cancel: str, ask: bool, error: str = "") -> str:
    what = f"{others} other device{'' if others == 1 else 's'}"
    text = "Every session except this one ends now; this browser stays signed in."
    fields = _hidden(csrf_token=csrf)
    if ask:  # the step-up: proved too long ago, so the password again
        text += " Confirm your password first."
        fields += (
            _banner("error", escape(error), "alert")
            + "<label>Password <input name=password type=password "
            "autocomplete=current-password required></label>"
        )
    return _confirm(
        f"Sign out {what}?", text, fields, "/devices/signout-others", f"Sign out {what}", cancel
    )


_DIALOG_CANCEL = "<button type=submit formmethod=dialog formnovalidate class=plain>Cancel</button>"
_PAGE_CANCEL = "<a class=button href=/dashboard>Cancel</a>"


def _device_card(group: DeviceSessions, mine: bool, csrf: str, now: float, n: int) -> str:
    device = group.device
    name = escape(device.name or device.id)
    agent = parse(device.user_agent)
    created = min(s.created_at for s in group.sessions)
    badge = "<span class=badge>this device</span>" if mine else ""
    fresh = ""
    if any(s.data.get(NEW_DEVICE) for s in group.sessions):
        fresh = (
            "<dt>First seen</dt><dd>at this sign-in<span class='badge new'>new device</span></dd>"
        )
    raw = escape(device.user_agent or "none sent")
    proved = max(s.auth_time for s in group.sessions)
    kept = (
        "yes, across browser restarts"
        if any(s.persistent for s in group.sessions)
        else "no: ends when the browser closes"
    )
    return f"""
<section class="card device" data-device="{escape(device.id)}">
<div class=top><h3>{name}{badge}</h3>
<form method=get action=/devices/signout data-dialog=confirm-{n}>
{_hidden(device_id=device.id)}<button type=submit>Sign out {name}</button></form></div>
<dl>
<dt>Browser</dt><dd>{escape(str(agent))}
<details><summary>User agent</summary><code>{raw}</code></details></dd>
<dt>IP address</dt><dd>{escape(device.ip or "unknown")}</dd>
<dt>Signed in</dt><dd>{when(created, now)}</dd>{fresh}
<dt>Last active</dt><dd>{when(group.last_seen_at, now)}</dd>
<dt>Sessions</dt><dd>{len(group.sessions)}</dd>
<dt>Verified</dt><dd>{when(proved, now)}</dd>
<dt>Remembered</dt><dd>{kept}</dd>
</dl>
<dialog id=confirm-{n}>{_device_confirm(group, mine, csrf, _DIALOG_CANCEL)}</dialog>
</section>"""


def dashboard(
    principal: Principal,
    groups: Sequence[DeviceSessions],
    my_device: str | None,
    csrf: str,
    recent: Sequence[tuple[float, str]] = (),
    notice: str = "",
    ask: bool = False,
    history: Sequence[HistoryEntry] = (),
) -> str:
    """The signed-in user's sessions grouped by device, with the sign-out buttons.

    ``ask``: signing out the other devices asks for the password (a step-up) first.
    """
    now = time.time()
    # This device first, then the others, most recently seen first.
    ordered = sorted(groups, key=lambda g: (g.device.id != my_device, -g.last_seen_at))
    cards = "".join(
        _device_card(g, g.device.id == my_device, csrf, now, n) for n, g in enumerate(ordered)
    )
    others = sum(1 for g in groups if g.device.id != my_device)
    events = "".join(f"<li>{escape(line)}, {when(at, now)}</li>" for at, line in recent)
    entries = "".join(f"<li>{_history_line(e)}, {when(e.at, now)}</li>" for e in history)
    degraded = (
        "The session store is unreachable: showing what the token says."
        if principal.degraded
        else ""
    )
    plural = "" if len(groups) == 1 else "s"
    sign_out_others = (
        f"""<form method=get action=/devices/signout-others data-dialog=confirm-others>
<button type=submit>Sign out all other devices</button></form>
<dialog id=confirm-others>{_others_confirm(others, csrf, _DIALOG_CANCEL, ask)}</dialog>"""
        if others
        else ""
    )
    body = f"""{_banner("notice", escape(notice))}{_banner("error", degraded, "alert")}
<div class=card><div class=top><h2>Your devices</h2>{sign_out_others}</div>
<p class=meta style="margin-bottom:0">Signed in as <b id=user>{escape(principal.user_id)}</b>
on {len(groups)} device{plural}. The protected API answers at <a href=/api/me>/api/me</a>.</p>
</div>{cards}
<div class=card><h3>Account history</h3><ul class="meta history">{entries}</ul></div>
<div class=card><h3>Recent events</h3><ul class=meta>{events}</ul></div>"""
    return _page("Your devices", body, _account(principal, csrf))


_REASONS = {
    "logout": "signed out",
    "revoke": "signed out by an admin",
    "device": "device signed out",
    "user": "signed out everywhere",
    "password": "signed out: password changed",
    "evicted": "signed out: too many sessions",
    "reuse": "signed out: refresh token reused",
    "rotated": "session id rotated",
}


def _history_line(entry: HistoryEntry) -> str:
    """One history entry in words (escaped): what happened, on which session."""
    ref = f"<code>{escape(entry.session_ref)}…</code>"
    if entry.kind in ("login", "adopted"):
        how = "Signed in" if entry.kind == "login" else "Moved from a legacy token"
        where = f"{entry.browser} on {entry.os}" if entry.browser else entry.device_name
        ip = f" from {escape(entry.ip)}" if entry.ip else ""
        return f"{how} on <b>{escape(where or 'an unnamed device')}</b>{ip} {ref}"
    if entry.kind == "step_up":
        return f"Confirmed it is you ({escape(entry.method)}, level {entry.level}) {ref}"
    if entry.kind == "refresh":
        return f"Tokens refreshed {ref}"
    if entry.kind == "reuse":
        return f"<b>A spent refresh token came back</b> {ref}"
    reason = _REASONS.get(entry.reason, entry.reason or "signed out")
    return f"{escape(reason[:1].upper() + reason[1:])} {ref}"


def _account(principal: Principal, csrf: str) -> str:
    return (
        f"<span>{escape(principal.user_id)}</span><form method=post action=/logout>"
        f"{_hidden(csrf_token=csrf)}<button type=submit>Sign out</button></form>"
    )


def confirm_page(
    principal: Principal,
    csrf: str,
    group: DeviceSessions | None = None,
    mine: bool = False,
    others: int = 0,
    ask: bool = False,
    error: str = "",
) -> str:
    """The confirm step without JavaScript: one device (``group``) or all ``others``
    (``ask``: with the password, ``error`` saying why it was refused)."""
    if group is not None:
        box = _device_confirm(group, mine, csrf, _PAGE_CANCEL)
    else:
        box = _others_confirm(others, csrf, _PAGE_CANCEL, ask, error)
    body = f"<div class=card style='max-width:460px;margin:32px auto'>{box}</div>"
    return _page("Sign out?", body, _account(principal, csrf))
