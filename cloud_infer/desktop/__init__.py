"""The thin client: the user's desktop in a browser tab beside the sidebar.

``service.py`` (which desktops a user has, may they open one, the connection to its VNC server),
``relay.py`` (the websocket <-> VNC byte relay), ``api_router.py`` (its routes), ``page_router.py``
(the ``/desk`` page, its files and noVNC's), ``config.py`` (``SHADOWDESK_DESKTOP_*``); docs/thin_client.md.
"""
