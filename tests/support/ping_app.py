"""A tiny X client that answers the window manager's ``_NET_WM_PING``, as GTK and Qt apps do.

Run as a program (``python tests/support/ping_app.py TITLE``): one top-level window of WM_CLASS
``pingapp.PingApp`` that advertises ``_NET_WM_PING`` and answers each ping by sending it back to the
root window (EWMH). SIGSTOP it and it stops answering, like a hung app.
"""

from __future__ import annotations

import os
import sys

from Xlib import X, Xatom
from Xlib.display import Display
from Xlib.protocol import event as xevent


def main(title: str) -> None:
    display = Display()
    root = display.screen().root
    window = root.create_window(0, 0, 200, 100, 0, display.screen().root_depth)
    protocols = display.get_atom("WM_PROTOCOLS")
    ping = display.get_atom("_NET_WM_PING")
    window.set_wm_name(title)
    window.set_wm_class("pingapp", "PingApp")
    window.change_property(protocols, Xatom.ATOM, 32, [display.get_atom("WM_DELETE_WINDOW"), ping])
    window.change_property(display.get_atom("_NET_WM_PID"), Xatom.CARDINAL, 32, [os.getpid()])
    window.map()
    display.flush()
    while True:
        received = display.next_event()
        if isinstance(received, xevent.ClientMessage) and received.client_type == protocols:
            _, data = received.data
            if data[0] == ping:
                reply = xevent.ClientMessage(window=root, client_type=protocols, data=(32, list(data)))
                root.send_event(reply, event_mask=X.SubstructureNotifyMask | X.SubstructureRedirectMask)
                display.flush()


if __name__ == "__main__":
    main(sys.argv[1])
