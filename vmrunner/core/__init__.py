"""A JGrapes-style typed component/event bus. Knows nothing about VMs.

See docs/design/architecture.md for the model, the ordering and the completion rules.
"""

from .channel import BROADCAST as BROADCAST
from .channel import Channel as Channel
from .channel import NamedChannel as NamedChannel
from .component import Component as Component
from .config import Configurable as Configurable
from .config import ConfigurationRejected as ConfigurationRejected
from .config import ConfigurationUpdate as ConfigurationUpdate
from .config import ConfigWatcher as ConfigWatcher
from .config import InitialConfiguration as InitialConfiguration
from .config import ReloadConfiguration as ReloadConfiguration
from .errors import CoreError as CoreError
from .errors import DeadlockError as DeadlockError
from .errors import HandlerDeclarationError as HandlerDeclarationError
from .errors import StateError as StateError
from .events import Attached as Attached
from .events import CompletionEvent as CompletionEvent
from .events import Detached as Detached
from .events import Error as Error
from .events import Event as Event
from .events import HandlingError as HandlingError
from .events import Start as Start
from .events import Started as Started
from .events import Stop as Stop
from .events import Stopped as Stopped
from .handle import CompletionLock as CompletionLock
from .handle import EventHandle as EventHandle
from .handle import HandlerContext as HandlerContext
from .handle import Resumer as Resumer
from .handler import handler as handler
from .observe import Observers as Observers
from .run import run as run
from .tasks import Timer as Timer
from .waiting import first_of as first_of

__all__ = [
    "BROADCAST",
    "Attached",
    "Channel",
    "CompletionEvent",
    "CompletionLock",
    "Component",
    "ConfigWatcher",
    "Configurable",
    "ConfigurationRejected",
    "ConfigurationUpdate",
    "CoreError",
    "DeadlockError",
    "Detached",
    "Error",
    "Event",
    "EventHandle",
    "HandlerContext",
    "HandlerDeclarationError",
    "HandlingError",
    "InitialConfiguration",
    "NamedChannel",
    "Observers",
    "ReloadConfiguration",
    "Resumer",
    "Start",
    "Started",
    "StateError",
    "Stop",
    "Stopped",
    "Timer",
    "first_of",
    "handler",
    "run",
]
