"""VmopAgent: auto-login through the guest's vmop agent (``vm.display.loggedInUser``).

The agent's port (``org.jdrupes.vmop_agent.0``, found by name in QEMU's argv) is connected
when the guest opens it (QMP ``VSERPORT_CHANGE`` for its qdev id), as the GuestAgent does
for qemu-ga. When the agent says it started (``220``: :class:`VmopAgentConnected`) it gets
the wanted state: ``login <user>`` when ``loggedInUser`` is set, ``logout`` when not; later
it gets each change of ``loggedInUser`` (``ConfigureQemu``, live).

**One command in flight, the newest wish next.** A command is sent only when none is
waiting for its answer, and only if the wanted state differs from the last one sent to this
agent. When an answer arrives, the wish as it is *then* is compared again. So a storm of
changes sends at most one command per answer and ends on the last wish; nothing stale is
queued. A refused login is not retried until the wish changes or the agent restarts. A
command without an answer within ``reply_timeout`` s is reported (WARNING, status
``last_error``) and keeps waiting: the agent's late answer still counts, and nothing else is
sent to a hung agent until it answers or restarts.

Answers: ``201`` → :class:`UserLoggedIn`, ``202`` → :class:`UserLoggedOut`,
``4xx``/``5xx`` → :class:`LoginFailed` and a WARNING. Lines that answer nothing (a code not
asked for, no code, an overlong line) are a WARNING each and change nothing.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from vmrunner.components.base import BusComponent
from vmrunner.core import Channel, Stopped, Timer, handler
from vmrunner.events import (
    ConfigureQemu,
    LoginFailed,
    ProcessExited,
    ProcessRole,
    QmpVserportChange,
    UserLoggedIn,
    UserLoggedOut,
    VmopAgentConnected,
    VmopAgentDisconnected,
    VmPrepared,
)
from vmrunner.events.status import StatusQuery, VmopAgentStatus
from vmrunner.protocols.vmop import (
    AgentQuit,
    AgentStarted,
    Answer,
    Command,
    Informational,
    Junk,
    ReplyKind,
    ReplyMatcher,
    Unexpected,
    VmopClient,
    VmopError,
)

_log = logging.getLogger(__name__)

REPLY_TIMEOUT = 30.0
"""Seconds an agent may take to answer (a desktop login can be slow)."""


class VmopAgent(BusComponent):
    """Logs the configured user in (or out) through the guest's vmop agent."""

    def __init__(self, channel: Channel | None = None, name: str | None = None, *,
                 reply_timeout: float = REPLY_TIMEOUT) -> None:
        super().__init__(channel, name)
        self.reply_timeout = reply_timeout
        self._port: str | None = None
        self._socket: Path | None = None
        self._wanted: str | None = None
        self._client: VmopClient | None = None
        self._session: asyncio.Task[None] | None = None
        self._matcher = ReplyMatcher()
        self._started = False
        """The agent said ``220`` on this connection (and has not quit)."""
        self._last_sent: Command | None = None
        """The last command sent to the running agent: the wish it was told."""
        self._timer: Timer | None = None
        self._warned_no_port = False
        self._logged_in: str | None = None
        self._last_error: str | None = None

    @property
    def connected(self) -> bool:
        """Whether the agent runs (said ``220``) and is connected."""
        return self._started and self._client is not None

    @property
    def logged_in_user(self) -> str | None:
        """The user the agent last confirmed logged in (``None``: none or unknown)."""
        return self._logged_in

    # -- configuration ---------------------------------------------------------------------

    @handler
    def on_prepared(self, event: VmPrepared) -> None:
        self._port = event.plan.vmop_agent_channel
        self._socket = event.plan.paths.vmop_agent_socket if self._port else None
        self._wanted = event.plan.config.vm.wanted_user
        self._check_port()

    @handler
    def on_configure(self, event: ConfigureQemu) -> None:
        wanted = event.config.vm.wanted_user
        if wanted == self._wanted:
            return
        _log.info("loggedInUser %s → %s", _who(self._wanted), _who(wanted))
        self._wanted = wanted
        self._check_port()
        self._kick()

    def _check_port(self) -> None:
        if self._wanted is not None and self._port is None and not self._warned_no_port:
            self._warned_no_port = True
            _log.warning(
                "/Runner/vm/display/loggedInUser is set, but the VM type has no virtio-serial "
                "port named org.jdrupes.vmop_agent.0 (with an id): nobody will be logged in "
                "(see docs/guide/templates.md)")

    # -- the connection ----------------------------------------------------------------------

    @handler
    def on_vserport(self, event: QmpVserportChange) -> None:
        if event.id != self._port or self._port is None:
            return
        if event.open and self._socket is not None:
            if self._session is None or self._session.done():
                self._session = self.spawn(self._run(self._socket), name="vmop-session")
        elif not event.open:
            _log.info("vmop agent port closed by the guest")
            self._drop("the guest closed the port")

    async def _run(self, socket: Path) -> None:
        client = VmopClient("vmop")
        try:
            await client.connect(socket)
        except VmopError as exc:
            _log.warning("vmop agent not usable: %s", exc)
            return
        self._client = client
        _log.debug("vmop agent port connected; waiting for the agent's 220")
        try:
            while True:
                line = await client.read_line()
                self._on_line(line.text, overlong=line.overlong)
        except VmopError as exc:
            _log.info("vmop agent connection lost: %s", exc)
        finally:
            if self._client is client:
                self._drop("connection lost", cancel=False)

    def _drop(self, reason: str, *, cancel: bool = True) -> None:
        client, self._client = self._client, None
        session = self._session
        if cancel and session is not None and not session.done() \
                and session is not asyncio.current_task():
            session.cancel()
        self._lost(reason)
        if client is not None:
            self.spawn(client.close(), name="vmop-close")

    def _lost(self, reason: str) -> None:
        """The agent is gone: forget what it was told and what it confirmed."""
        voided = self._matcher.reset()
        if voided is not None:
            _log.info("vmop agent: %r was not answered (%s)", voided.line, reason)
        self._cancel_timer()
        self._last_sent = None
        self._logged_in = None
        if self._started:
            self._started = False
            self.fire(VmopAgentDisconnected(reason=reason))

    # -- lines from the agent ----------------------------------------------------------------

    def _on_line(self, text: str, *, overlong: bool = False) -> None:
        outcome = self._matcher.feed(text, overlong=overlong)
        if isinstance(outcome, Answer):
            self._answered(outcome)
        elif isinstance(outcome, AgentStarted):
            if outcome.voided is not None:
                _log.info("vmop agent restarted: %r will not be answered", outcome.voided.line)
            self._cancel_timer()
            self._last_sent = None  # a new agent: tell it the wish again
            self._logged_in = None
            self._started = True
            _log.info("vmop agent started: %s", outcome.reply)
            self.fire(VmopAgentConnected())
            self._kick()
        elif isinstance(outcome, AgentQuit):
            _log.info("vmop agent quit: %s", outcome.reply)
            self._lost(f"the agent quit ({outcome.reply})")
        elif isinstance(outcome, Informational):
            _log.debug("vmop agent: %s", outcome.reply)
        elif isinstance(outcome, Unexpected):
            _log.warning("vmop agent: unexpected reply %d %r (%s): ignored",
                         outcome.reply.code, outcome.reply.text, outcome.why)
        elif isinstance(outcome, Junk):
            if outcome.overlong:
                _log.warning("vmop agent: a line longer than %d bytes (%r...): ignored",
                             len(outcome.line.encode()), outcome.line[:60])
            else:
                _log.warning("vmop agent: unexpected line %r (no 3-digit code): ignored",
                             outcome.line[:200])

    def _answered(self, answer: Answer) -> None:
        self._cancel_timer()
        command, reply = answer.command, answer.reply
        late = " (late)" if answer.late else ""
        if reply.kind is ReplyKind.ERROR:
            what = f"login {command.user}" if command.user is not None else "logout"
            self._last_error = f"{what}: {reply}"
            _log.warning("vmop agent refused %r: %d %s%s", command.line, reply.code,
                         reply.text, late)
            self.fire(LoginFailed(code=reply.code, text=reply.text, user=command.user))
        elif command.user is not None:
            self._logged_in, self._last_error = command.user, None
            _log.info("user %s logged in (%s)%s", command.user, reply, late)
            self.fire(UserLoggedIn(user=command.user))
        else:
            self._logged_in, self._last_error = None, None
            _log.info("user logged out (%s)%s", reply, late)
            self.fire(UserLoggedOut())
        self._kick()

    # -- sending -----------------------------------------------------------------------------

    def _kick(self) -> None:
        """Send the wish if the agent runs, nothing is in flight and it was not sent yet."""
        client = self._client
        if client is None or not self._started or self._matcher.in_flight is not None:
            return
        command = Command(self._wanted)
        if command == self._last_sent:
            return
        try:
            client.send(command)
        except VmopError as exc:
            _log.info("vmop agent: cannot send %r: %s", command.line, exc)
            return
        self._matcher.sent(command)
        self._last_sent = command
        self._timer = self.schedule(self.reply_timeout, self._expired)

    def _expired(self) -> None:
        self._timer = None
        command = self._matcher.expire()
        if command is None:
            return
        self._last_error = f"{command.line}: no answer within {self.reply_timeout:g} s"
        _log.warning("vmop agent: no answer to %r within %g s; still waiting for it (nothing "
                     "else is sent until the agent answers or restarts)", command.line,
                     self.reply_timeout)

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    # -- the end -----------------------------------------------------------------------------

    @handler
    def on_exited(self, event: ProcessExited) -> None:
        if event.name == ProcessRole.QEMU:
            self._drop("QEMU exited")

    @handler
    def on_stopped(self, event: Stopped) -> None:
        self._drop("stopped")

    # -- status (GET /status) ----------------------------------------------------------------

    @handler
    def on_status_query(self, event: StatusQuery) -> VmopAgentStatus:
        return VmopAgentStatus(connected=self.connected, logged_in_user=self._logged_in,
                               wanted_user=self._wanted, last_error=self._last_error)


def _who(user: str | None) -> str:
    return "(logged out)" if user is None else repr(user)
