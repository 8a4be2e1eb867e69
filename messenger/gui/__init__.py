"""The messenger window (PySide6 over a qasync loop); see messenger/gui/app.py."""

from messenger.gui.compat import keep_none_alive

keep_none_alive()
