"""The Clusters panel: cluster profiles (list + form) and "Test" (the cluster's doctor facts).

    panel = ClustersPanel()                       # ProfileStore() in the user's config dir
    panel = ClustersPanel(store, ssh_options={"known_hosts": path, "ssh_config": cfg})

The list shows "This computer" first (built in, read-only) and every stored profile with its
``describe()`` and GPU label. The form edits the selected profile or a new one (Add); Save
validates with ``ClusterProfile`` and shows each pydantic error next to the field it names,
keeping what was typed. Renaming a profile adds the new name, then removes the old one.

Test runs, in the worker, what ``synthsmith cluster test`` runs (remote/cli.py
``_cluster_test``): ``runner_for`` -> connect -> ``sync_bundle`` -> ``remote_doctor`` ->
``stage_problems`` for every stage, and shows ``summary_lines`` and the per-stage problems.
An unknown host key is not an error here: the worker returns it (a ``WorkerError`` carries
only text, and accepting needs the key itself), the GUI thread asks the user with
``confirm_host_key`` (host, key type, SHA256 fingerprint), and only an accepted key is written
by ``accept_host_key`` (in the worker) before the test runs again. Every store read and write
goes through the worker too, as every I/O of a widget does (ARCHITECTURE.md §7).

Left out: Slurm ``extra`` options (kept as loaded, not editable here), cancelling a running
test, and stage problems against a pipeline config unless one is set on ``panel.config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gui.notify import Notice
from gui.worker import Job, WorkerError, run_in_worker
from remote.display_text import visible
from remote.errors import HostKeyUnknown
from remote.profiles import LOCAL, ClusterProfile, ProfileStore

MAX_KEY_PROMPTS = 4  # the target and up to three jump hosts may each be new (as the CLI)

# Form fields in display order: (key, label). The key is what a pydantic error's loc names
# (slurm settings flattened to slurm_<name>).
FIELDS: tuple[tuple[str, str], ...] = (
    ("name", "Name"),
    ("host", "Host"),
    ("port", "Port"),
    ("user", "User"),
    ("identity_file", "Identity file"),
    ("use_agent", "Use SSH agent"),
    ("jump", "Jump hosts"),
    ("workdir", "Work dir"),
    ("python", "Python"),
    ("activate", "Activate line"),
    ("scheduler", "Scheduler"),
    ("slurm_partition", "Slurm partition"),
    ("slurm_account", "Slurm account"),
    ("slurm_qos", "Slurm QoS"),
    ("slurm_default_time", "Slurm default time"),
    ("gpu_type", "GPU type"),
    ("env", "Environment"),
)
SLURM_KEYS = ("partition", "account", "qos", "default_time")


# --- worker functions (Qt-free) --------------------------------------------------------------


@dataclass
class CheckOutcome:
    """What one Test run found: facts and problems, or a host key for the user to decide on."""

    profile_name: str
    summary: list[str] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    unknown_key: HostKeyUnknown | None = None
    known_hosts_file: str | None = None  # where an accepted key goes (the runner's first file)
    warnings: list[str] = field(default_factory=list)  # known_hosts lines that were skipped


def check_cluster(profile: ClusterProfile, ssh_options: dict[str, Any],
                 config: Any | None = None) -> CheckOutcome:
    """The CLI's ``cluster test`` without the prompt; runs in the worker."""
    from engine.contracts.config import STAGE_ORDER
    from remote.bundle import sync_bundle
    from remote.doctor import remote_doctor, stage_problems, summary_lines
    from remote.profiles import runner_for

    runner = runner_for(profile, **ssh_options)
    try:
        if hasattr(runner, "connect"):  # LocalRunner ("This computer") has nothing to connect
            try:
                runner.connect()
            except HostKeyUnknown as e:
                return CheckOutcome(profile.name, unknown_key=e,
                                   known_hosts_file=runner.known_hosts_file)
        report = sync_bundle(runner, profile.workdir)
        facts = remote_doctor(runner, profile, report.bundle_dir)
        if config is not None:
            stages = [s for s in STAGE_ORDER if getattr(config, s).enabled
                      and getattr(config, s).placement == profile.name]
        else:
            stages = list(facts.get("stages", {}))
        problems = stage_problems(facts, config, stages, profile.name,
                                  gpus_here=profile.scheduler == "direct")
        return CheckOutcome(profile.name, summary_lines(facts), problems, facts,
                            warnings=known_hosts_warnings(runner))
    finally:
        runner.close()


def known_hosts_warnings(runner: Any) -> list[str]:
    """The runner's skipped known_hosts lines, as lines to show ("This computer": none)."""
    return [f"known_hosts line skipped: {w}" for w in getattr(runner, "known_hosts_warnings", [])]


# What a failed test was, in words (a class name like "TransientError" tells a user nothing).
FAILURE_WORDS = {
    "TransientError": "the connection failed",
    "HostUnreachable": "the host cannot be reached",
    "AuthError": "the login was refused",
    "HostKeyChanged": "the host key changed: refused",
    "CommandTimeout": "a command timed out",
    "CommandInterrupted": "the connection dropped during a command",
    "RemoteSetupError": "the cluster is not ready",
    "OutputTooLarge": "the cluster sent far more than asked",
    "ProfileError": "the profile is not valid",
}


def failure_words(kind: str) -> str:
    return "the test failed: " + FAILURE_WORDS.get(kind, "an unexpected error (details in "
                                                   "Notifications)")


def save_profile(store: ProfileStore, profile: ClusterProfile, old_name: str | None) -> str:
    """Add ``profile`` (replacing ``old_name`` when editing; a rename removes the old entry)."""
    if old_name is None:
        store.add(profile)
    elif old_name == profile.name:
        store.add(profile, replace=True)
    else:
        store.add(profile)  # refuses a name that exists already, before anything is removed
        store.remove(old_name)
    return profile.name


# --- the panel -------------------------------------------------------------------------------


class ClustersPanel(QWidget):
    # After a profile was saved or removed (the Pipeline panel re-reads its placement list).
    profiles_changed = Signal()
    notice = Signal(object)  # gui.notify.Notice: store failures and test outcomes

    def __init__(self, store: ProfileStore | None = None,
                 ssh_options: dict[str, Any] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("panel_clusters")
        self.store = store if store is not None else ProfileStore()
        self.ssh_options = dict(ssh_options or {})
        self.config: Any | None = None  # a loaded pipeline config: problems for its stages
        self.profiles: list[ClusterProfile] = []
        self._editing: ClusterProfile | None = None  # the stored profile the form shows
        self._key_prompts = 0
        self._testing = False

        self.list = QListWidget(objectName="profile_list")
        self.list.currentRowChanged.connect(self._on_row_changed)
        self.add_button = QPushButton("Add", objectName="add_button")
        self.remove_button = QPushButton("Remove", objectName="remove_button")
        self.add_button.clicked.connect(self.new_profile)
        self.remove_button.clicked.connect(self.remove_selected)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(QLabel("Cluster profiles"))
        lv.addWidget(self.list, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        lv.addLayout(buttons)

        self.editors: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        form_widget = QWidget()
        form = QFormLayout(form_widget)
        for key, label in FIELDS:
            editor = self._make_editor(key)
            self.editors[key] = editor
            error = QLabel(objectName=f"error_{key}")
            error.setStyleSheet("color: #c62828;")
            error.setWordWrap(True)
            error.hide()
            self.errors[key] = error
            cell = QWidget()
            cv = QVBoxLayout(cell)
            cv.setContentsMargins(0, 0, 0, 0)
            cv.setSpacing(1)
            if key == "identity_file":
                row = QHBoxLayout()
                row.addWidget(editor, 1)
                self.browse_button = QPushButton("Browse…", objectName="browse_button")
                self.browse_button.clicked.connect(self._pick_identity_file)
                row.addWidget(self.browse_button)
                cv.addLayout(row)
            else:
                cv.addWidget(editor)
            cv.addWidget(error)
            form.addRow(label, cell)
        self.form_error = QLabel(objectName="form_error")  # errors no field owns (store ones)
        self.form_error.setStyleSheet("color: #c62828;")
        self.form_error.setWordWrap(True)
        self.form_error.hide()
        self.save_button = QPushButton("Save", objectName="save_button")
        self.save_button.clicked.connect(self.save)
        self.test_button = QPushButton("Test", objectName="test_button")
        self.test_button.clicked.connect(self.test_selected)
        self.read_only_note = QLabel("Built in: runs stages here, with this Python. "
                                     "Not editable.", objectName="read_only_note")
        actions = QHBoxLayout()
        actions.addWidget(self.save_button)
        actions.addWidget(self.test_button)
        actions.addStretch(1)
        middle = QWidget()
        mv = QVBoxLayout(middle)
        mv.setContentsMargins(0, 0, 0, 0)
        mv.addWidget(self.read_only_note)
        mv.addWidget(form_widget)
        mv.addWidget(self.form_error)
        mv.addLayout(actions)
        mv.addStretch(1)

        self.status = QLabel("", objectName="test_status")
        self.status.setWordWrap(True)
        self.result = QPlainTextEdit(objectName="test_result")
        self.result.setReadOnly(True)
        self.result.setPlaceholderText("Test a profile to see its GPUs, CUDA, library "
                                       "versions, disk and Slurm partitions.")
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(QLabel("Connection test"))
        rv.addWidget(self.status)
        rv.addWidget(self.result, 1)

        # The form scrolls: its 13 rows must not set the window's minimum height (a laptop's
        # 720 px screen, or 576 logical px at 125 % scaling).
        form_scroll = QScrollArea(objectName="profile_form_scroll")
        form_scroll.setWidget(middle)
        form_scroll.setWidgetResizable(True)
        form_scroll.setFrameShape(QFrame.Shape.NoFrame)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        for w in (left, form_scroll, right):
            splitter.addWidget(w)
        splitter.setSizes([220, 480, 360])
        outer = QVBoxLayout(self)
        outer.addWidget(splitter)

        self.reload()

    # -- building -----------------------------------------------------------------------

    def _make_editor(self, key: str) -> QWidget:
        if key == "use_agent":
            return QCheckBox("offer the keys of the SSH agent", objectName="edit_use_agent")
        if key == "scheduler":
            box = QComboBox(objectName="edit_scheduler")
            box.addItems(["direct", "slurm"])
            box.currentTextChanged.connect(self._update_slurm_enabled)
            return box
        if key == "env":
            edit = QPlainTextEdit(objectName="edit_env")
            edit.setPlaceholderText("KEY=VALUE, one a line (plain settings, never secrets)")
            edit.setFixedHeight(70)
            return edit
        edit = QLineEdit(objectName=f"edit_{key}")
        hints = {"host": "host name or ~/.ssh/config alias", "port": "22",
                 "jump": "bastion.example, other.example (outermost first)",
                 "activate": "source ~/venv/bin/activate", "gpu_type": "H200"}
        if key in hints:
            edit.setPlaceholderText(hints[key])
        return edit

    # -- the list -----------------------------------------------------------------------

    def reload(self, select: str | None = None) -> Job:
        """Read the store (in the worker) and show it, selecting ``select`` if given."""
        return run_in_worker(self.store.list, on_done=lambda ps: self._show_profiles(ps, select),
                             on_failed=self._show_form_error, owner=self)

    def _changed(self, select: str | None = None) -> None:
        self.reload(select=select)
        self.profiles_changed.emit()

    def _show_profiles(self, profiles: list[ClusterProfile], select: str | None) -> None:
        current = select or (self._editing.name if self._editing else None)
        self.profiles = list(profiles)
        self.list.blockSignals(True)
        self.list.clear()
        for p in self.profiles:
            item = QListWidgetItem(f"{p.describe()}\nGPU: {p.gpu_type or 'not set'}")
            item.setData(Qt.ItemDataRole.UserRole, p.name)
            self.list.addItem(item)
        self.list.blockSignals(False)
        names = [p.name for p in self.profiles]
        self.list.setCurrentRow(names.index(current) if current in names else 0)
        self._on_row_changed(self.list.currentRow())

    def profile_names(self) -> list[str]:
        return [p.name for p in self.profiles]

    def select(self, name: str) -> None:
        self.list.setCurrentRow(self.profile_names().index(name))

    def _on_row_changed(self, row: int) -> None:
        if 0 <= row < len(self.profiles):
            self._load_form(self.profiles[row])
            self._clear_result()

    def _clear_result(self) -> None:
        """Another profile is shown: the last test's answer was about a different one."""
        if not self._testing:
            self.status.setText("")
            self.result.clear()

    # -- the form -----------------------------------------------------------------------

    def new_profile(self) -> None:
        """Empty the form for a profile to add (the list keeps no selection meanwhile)."""
        self.list.blockSignals(True)
        self.list.setCurrentRow(-1)
        self.list.blockSignals(False)
        self._editing = None
        self._fill(ClusterProfile(name="new", host="login.example"))
        self._line("name").clear()
        self._line("host").clear()
        self._set_read_only(False)
        self._clear_result()

    def _load_form(self, profile: ClusterProfile) -> None:
        self._editing = profile
        self._fill(profile)
        self._set_read_only(profile.name == LOCAL)

    def _line(self, key: str) -> QLineEdit:
        editor = self.editors[key]
        assert isinstance(editor, QLineEdit)
        return editor

    def _fill(self, p: ClusterProfile) -> None:
        self._clear_errors()
        values = {"name": p.name, "host": p.host, "port": p.port, "user": p.user,
                  "identity_file": p.identity_file, "jump": ", ".join(p.jump),
                  "workdir": p.workdir, "python": p.python, "activate": p.activate,
                  "gpu_type": p.gpu_type}
        values |= {f"slurm_{k}": getattr(p.slurm, k) for k in SLURM_KEYS}
        for key, value in values.items():
            self._line(key).setText("" if value is None else str(value))
        self.editors["use_agent"].setChecked(p.use_agent)  # type: ignore[attr-defined]
        self.editors["scheduler"].setCurrentText(p.scheduler)  # type: ignore[attr-defined]
        self.editors["env"].setPlainText(  # type: ignore[attr-defined]
            "\n".join(f"{k}={v}" for k, v in p.env.items()))
        self._update_slurm_enabled()

    def _set_read_only(self, read_only: bool) -> None:
        for editor in self.editors.values():
            editor.setEnabled(not read_only)
        self.browse_button.setEnabled(not read_only)
        self.save_button.setEnabled(not read_only)
        self.remove_button.setEnabled(not read_only and self._editing is not None)
        self.read_only_note.setVisible(read_only)
        if not read_only:
            self._update_slurm_enabled()

    def _update_slurm_enabled(self, *_: Any) -> None:
        slurm = self.editors["scheduler"].currentText() == "slurm"  # type: ignore[attr-defined]
        editable = self.editors["name"].isEnabled()
        for k in SLURM_KEYS:
            self.editors[f"slurm_{k}"].setEnabled(slurm and editable)

    def _pick_identity_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Private key file",
                                              self._line("identity_file").text() or "~/.ssh")
        if path:
            self._line("identity_file").setText(path)

    def form_data(self) -> dict[str, Any]:
        """The form as ``ClusterProfile`` input; raises ValueError for an env line without =."""
        def text(key: str) -> str | None:
            value = self._line(key).text().strip()
            return value or None

        env: dict[str, str] = {}
        for line in self.editors["env"].toPlainText().splitlines():  # type: ignore[attr-defined]
            if not line.strip():
                continue
            k, sep, v = line.partition("=")
            if not sep:
                raise ValueError(f"write KEY=VALUE, not {line.strip()!r}")
            env[k.strip()] = v.strip()
        slurm: dict[str, Any] = {k: text(f"slurm_{k}") for k in SLURM_KEYS}
        if self._editing is not None:
            slurm["extra"] = list(self._editing.slurm.extra)  # not editable here: kept as is
        jump = [j.strip() for j in (text("jump") or "").split(",") if j.strip()]
        data: dict[str, Any] = {
            "name": text("name") or "", "host": text("host"), "port": text("port"),
            "user": text("user"), "identity_file": text("identity_file"),
            "use_agent": self.editors["use_agent"].isChecked(),  # type: ignore[attr-defined]
            "jump": jump, "workdir": text("workdir") or "~/synthsmith",
            "python": text("python") or "python3", "activate": text("activate"),
            "scheduler": self.editors["scheduler"].currentText(),  # type: ignore[attr-defined]
            "slurm": slurm, "gpu_type": text("gpu_type"), "env": env,
        }
        return data

    def _clear_errors(self) -> None:
        for label in self.errors.values():
            label.clear()
            label.hide()
        self.form_error.clear()
        self.form_error.hide()

    def _show_field_error(self, key: str, message: str) -> None:
        label = self.errors.get(key)
        if label is None:
            self._show_form_error(message)
            return
        label.setText((label.text() + "\n" if label.text() else "") + message)
        label.show()

    def _show_form_error(self, error: WorkerError | str) -> None:
        # A ProfileError's message already says what to do; the class name adds nothing.
        message = error.message if isinstance(error, WorkerError) else error
        self.form_error.setText(message)
        self.form_error.show()
        self.notice.emit(Notice.from_error("Cluster profiles", error, source="Clusters"))

    def field_errors(self) -> dict[str, str]:
        """The errors shown next to fields now, by field key (tests and status bars read it)."""
        return {k: label.text() for k, label in self.errors.items() if label.text()}

    def validated_profile(self) -> ClusterProfile | None:
        """The form as a profile, or None after showing every error next to its field."""
        self._clear_errors()
        try:
            data = self.form_data()
        except ValueError as e:
            self._show_field_error("env", str(e))
            return None
        try:
            profile = ClusterProfile.model_validate(data)
        except ValidationError as e:
            for err in e.errors():
                loc = [str(p) for p in err["loc"]]
                key = loc[0]
                if key == "slurm" and len(loc) > 1:
                    key = f"slurm_{loc[1]}"
                detail = f" ({'.'.join(loc[1:])})" if key in ("jump", "env") and loc[1:] else ""
                self._show_field_error(key, f"{err['msg']}{detail}")
            return None
        if profile.name == LOCAL:
            self._show_field_error("name", f"{LOCAL!r} is built in; give your profile "
                                   "another name")
            return None
        if profile.is_local:
            self._show_field_error("host", "a cluster profile needs a host (\"This computer\" "
                                   "is the built-in local one)")
            return None
        return profile

    def save(self) -> Job | None:
        """Validate and store the form (in the worker); None when the form has errors."""
        profile = self.validated_profile()
        if profile is None:
            return None
        old = self._editing.name if self._editing is not None else None
        return run_in_worker(save_profile, self.store, profile, old,
                             on_done=lambda name: self._changed(select=name),
                             on_failed=self._show_form_error, owner=self)

    def remove_selected(self) -> Job | None:
        if self._editing is None or self._editing.name == LOCAL:
            return None
        name = self._editing.name
        self._editing = None
        return run_in_worker(self.store.remove, name, on_done=lambda _: self._changed(),
                             on_failed=self._show_form_error, owner=self)

    # -- the test -----------------------------------------------------------------------

    def selected_profile(self) -> ClusterProfile | None:
        row = self.list.currentRow()
        return self.profiles[row] if 0 <= row < len(self.profiles) else None

    def is_testing(self) -> bool:
        return self._testing

    def test_selected(self) -> Job | None:
        """Test what the form shows: a new or edited profile before it is saved (its fields
        checked first, errors shown next to them), else the selected stored one."""
        if self._testing:
            return None
        if self._editing is not None and self._editing.name == LOCAL:
            profile = self.selected_profile()
        else:
            profile = self.validated_profile()
            if profile is None:
                self.status.setText("Fix the fields marked in red, then Test again.")
                return None
        if profile is None:
            return None
        self._key_prompts = 0
        self.result.clear()
        return self._start_test(profile)

    def _start_test(self, profile: ClusterProfile) -> Job:
        self._testing = True
        self.test_button.setEnabled(False)
        self.status.setText(f"Testing {profile.describe()}: connecting, uploading the engine, "
                            "running its doctor…")
        return run_in_worker(check_cluster, profile, self.ssh_options, self.config,
                             on_done=lambda outcome: self._test_done(profile, outcome),
                             on_failed=lambda error: self._test_failed(profile, error),
                             owner=self)

    def _finish_test(self, status: str, text: str, level: str = "info",
                     details: str | None = None) -> None:
        self._testing = False
        self.test_button.setEnabled(True)
        # What a cluster answered (doctor facts, error text) is shown with its control and
        # bidi characters visible.
        self.status.setText(visible(status))
        self.result.setPlainText(visible(text, keep_newlines=True))
        self.notice.emit(Notice(level, status, text if details is None else details,
                                source="Clusters"))

    def _test_failed(self, profile: ClusterProfile, error: WorkerError) -> None:
        self._finish_test(f"{profile.name}: {failure_words(error.kind)}.", error.message,
                          level="error", details=f"{error.message}\n\n{error.traceback}")

    def _test_done(self, profile: ClusterProfile, outcome: CheckOutcome) -> None:
        key = outcome.unknown_key
        if key is None:
            lines = list(outcome.summary)
            if outcome.warnings:
                lines += ["", "Warnings:"] + [f"  {w}" for w in outcome.warnings]
            if outcome.problems:
                lines.append("")
                lines.append("Problems:")
                for stage, problems in outcome.problems.items():
                    lines += [f"  {'all stages' if stage == '*' else stage}: {p}"
                              for p in problems]
                status = f"{profile.name}: ready, with the problems below for those stages."
            else:
                status = f"{profile.name}: ready."
            if outcome.warnings:
                status = status[:-1] + f" ({len(outcome.warnings)} known_hosts lines skipped)."
            self._finish_test(status, "\n".join(lines),
                              level="warning" if outcome.warnings else "info")
            return
        self._key_prompts += 1
        if self._key_prompts > MAX_KEY_PROMPTS:  # a host whose key never sticks: stop asking
            self._finish_test(f"{profile.name}: not connected.",
                              f"{key}\n\n{MAX_KEY_PROMPTS} host keys were accepted and the "
                              "connection still meets an unknown one; check known_hosts.",
                              level="warning")
            return
        if not self.confirm_host_key(key):
            self._finish_test(f"{profile.name}: not connected; nothing was trusted.",
                              f"The host key of {key.host}:{key.port} ({key.key_type} "
                              f"{key.fingerprint}) was not accepted, so nothing was trusted or "
                              "sent. Compare the fingerprint with the one the cluster's admins "
                              "publish, then test again.", level="warning")
            return
        from remote.hostkeys import accept_host_key

        self.status.setText(f"Saving the host key of {key.host}:{key.port} in "
                            f"{outcome.known_hosts_file}…")
        run_in_worker(accept_host_key, outcome.known_hosts_file, key.host, key.port, key.key,
                      on_done=lambda _: self._start_test(profile),
                      on_failed=lambda error: self._test_failed(profile, error), owner=self)

    def confirm_host_key(self, error: HostKeyUnknown) -> bool:
        """Ask the user whether to trust a host key never seen before (tests replace this)."""
        from gui.hostkey_flow import confirm_host_key

        return confirm_host_key(self, error)
