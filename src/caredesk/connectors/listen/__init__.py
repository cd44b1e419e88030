"""``caredesk listen``: the long-lived stream connections of every streaming installation, on any number of
machines (see :mod:`caredesk.connectors.listen.runner`)."""
