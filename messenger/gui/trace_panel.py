"""The SIP trace panel: requests and responses with direction, time and status,
filterable, each openable as raw text and as decoded layers."""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QRegularExpression,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from messenger.gui.security_dialog import _raw_text, cms_structure, split_sip
from messenger.ua.events import SipTrace

__all__ = ["TraceModel", "TracePanel"]

_COLUMNS = ("Time", "Direction", "Transport", "Remote", "Status", "First line", "Size")
_STATUS = re.compile(r"^SIP/2\.0 (\d{3})")
_KEPT = 5000

_Index = QModelIndex | QPersistentModelIndex


def trace_status(summary: str) -> str:
    """The status code of a response's start line; the method of a request."""
    m = _STATUS.match(summary)
    if m:
        return m.group(1)
    return summary.split(" ", 1)[0] if summary else ""


class TraceModel(QAbstractTableModel):
    """The last few thousand SIP messages that crossed the wire."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[SipTrace] = []

    def add(self, trace: SipTrace) -> None:
        if len(self._rows) >= _KEPT:
            self.beginRemoveRows(QModelIndex(), 0, 0)
            self._rows.pop(0)
            self.endRemoveRows()
        n = len(self._rows)
        self.beginInsertRows(QModelIndex(), n, n)
        self._rows.append(trace)
        self.endInsertRows()

    def trace(self, row: int) -> SipTrace:
        return self._rows[row]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(_COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        t = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            col = index.column()
            if col == 0:
                return t.at.astimezone().strftime("%H:%M:%S.%f")[:-3]
            if col == 1:
                return "→ sent" if t.direction == "out" else "← received"
            if col == 2:
                return t.transport.upper()
            if col == 3:
                return t.remote
            if col == 4:
                return trace_status(t.summary)
            if col == 5:
                return t.summary
            if col == 6:
                return f"{len(t.raw)} B"
        return None


class _DirectionFilter(QSortFilterProxyModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.direction = ""

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        model = self.sourceModel()
        assert isinstance(model, TraceModel)
        if self.direction and model.trace(source_row).direction != self.direction:
            return False
        return super().filterAcceptsRow(source_row, source_parent)


class TraceDialog(QDialog):
    """One traced SIP message: the raw text and its decoded layers."""

    def __init__(self, trace: SipTrace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"SIP {trace.direction}: {trace.summary}")
        self.resize(760, 520)
        layout = QVBoxLayout(self)
        tabs = QTabWidget()
        raw = self.raw_edit = QPlainTextEdit(_raw_text(trace.raw))
        raw.setReadOnly(True)
        raw.setObjectName("rawText")
        raw.setAccessibleName("Raw SIP message")
        tabs.addTab(raw, "&Raw")
        _head, body, ctype = split_sip(trace.raw)
        decoded = self.decoded_edit = QPlainTextEdit(
            cms_structure(body, ctype) if body else "No body."
        )
        decoded.setReadOnly(True)
        decoded.setObjectName("rawText")
        decoded.setAccessibleName("Decoded layers of the body")
        tabs.addTab(decoded, "&Decoded layers")
        layout.addWidget(tabs)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


class TracePanel(QWidget):
    """Filter box, direction choice and the table; Enter or double-click opens a message."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = TraceModel(self)
        self.proxy = _DirectionFilter(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        row = QHBoxLayout()
        label = QLabel("&Filter:")
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("method, status, address…")
        self.filter.setAccessibleName("Filter the SIP trace")
        label.setBuddy(self.filter)
        self.direction = QComboBox()
        self.direction.addItem("Both directions", "")
        self.direction.addItem("Sent only", "out")
        self.direction.addItem("Received only", "in")
        self.direction.setAccessibleName("Direction filter")
        row.addWidget(label)
        row.addWidget(self.filter, 1)
        row.addWidget(self.direction)
        layout.addLayout(row)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setAccessibleName("SIP trace")
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.horizontalHeader().setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table)
        self.filter.textChanged.connect(self._filter_changed)
        self.direction.currentIndexChanged.connect(self._direction_changed)
        self.table.activated.connect(self.open_row)

    def add(self, trace: SipTrace) -> None:
        self.model.add(trace)

    def _filter_changed(self, text: str) -> None:
        self.proxy.setFilterRegularExpression(
            QRegularExpression(
                QRegularExpression.escape(text),
                QRegularExpression.PatternOption.CaseInsensitiveOption,
            )
        )

    def _direction_changed(self) -> None:
        if hasattr(self.proxy, "beginFilterChange"):  # Qt 6.10 and later
            self.proxy.beginFilterChange()
            self.proxy.direction = str(self.direction.currentData())
            self.proxy.endFilterChange()
        else:
            self.proxy.direction = str(self.direction.currentData())
            self.proxy.invalidateFilter()

    def visible_rows(self) -> int:
        return self.proxy.rowCount()

    def open_row(self, index: QModelIndex) -> TraceDialog:
        source = self.proxy.mapToSource(index)
        dialog = TraceDialog(self.model.trace(source.row()), self)
        dialog.open()
        return dialog
