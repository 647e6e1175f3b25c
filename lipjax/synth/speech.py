"""Speech from espeak-ng, with phone timings reported by the synthesizer itself.

Audio and video must be in sync: the renderer places viseme targets at the times espeak-ng says it
is producing each phone (`espeakEVENT_PHONEME` events in IPA mode, via ctypes to libespeak-ng),
so the acoustic units computed from the audio later align with the mouth frames. espeak-ng speaks
at 22050 Hz; the audio is resampled to the corpus rate of 16 kHz.

libespeak-ng keeps global state, so each process initialises its own copy lazily (`_engine()`);
worker processes of `data_builders.synthetic_lips.build` therefore each own one synthesizer.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import ctypes.util
import dataclasses
import functools
import math
import os
import shutil
import tempfile
import threading

import numpy as np
from scipy import signal

from lipjax.schema import SAMPLE_RATE
from lipjax.units.phonemes import clean_phone

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_CHARS_UTF8 = 1
_STOPS = frozenset("pbtdkɡgcɟqʔ")
_CLOSURE_S = 0.045
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p),
                ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
            ("type", ctypes.c_int),
            ("unique_identifier", ctypes.c_uint),
            ("text_position", ctypes.c_int),
            ("length", ctypes.c_int),
            ("audio_position", ctypes.c_int),
            ("sample", ctypes.c_int),
            ("user_data", ctypes.c_void_p),
            ("id", _EventId),
    ]


class _VoiceInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_void_p),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte),
                ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte),
                ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclasses.dataclass(frozen=True)
class Voice:
    """How a speaker sounds: espeak voice (+variant), words per minute, pitch and pitch range."""

    espeak_voice: str
    variant: str = ""
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50


@dataclasses.dataclass(frozen=True)
class PhoneTiming:
    """One phone as the synthesizer produced it; times in seconds from the start of the audio."""

    phone: str
    start: float
    end: float


@dataclasses.dataclass(frozen=True)
class Utterance:
    """16 kHz int16 audio and the synthesizer's phone timings for it."""

    audio: np.ndarray
    phones: list[PhoneTiming]

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


class _Engine:
    """One process's libespeak-ng, driven synchronously through the synth callback."""

    def __init__(self) -> None:
        self.path = _private_copy()
        self._libc = ctypes.CDLL(None)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[str, int]] = []
        self._callback = _CALLBACK(self._on_synth)  # keep a reference: C holds the pointer
        self.lock = threading.Lock()
        self.lib: ctypes.CDLL | None = None
        self._load()
        self.identifiers = self._voice_identifiers()

    def _load(self) -> None:
        """(Re)loads libespeak-ng from scratch.

        The synthesizer carries state from one utterance to the next (static variables of the
        wave generator, libc `rand()`), so the same text would sound slightly different depending
        on what was said before. Unloading the library and reseeding `rand()` before each
        utterance makes a clip's audio a function of the clip alone (costs ~3 ms).
        """
        if self.lib is not None:
            self.lib.espeak_Terminate()
            _ctypes.dlclose(self.lib._handle)
        try:
            self.lib = ctypes.CDLL(self.path)
        except OSError as e:
            raise OSError(f"libespeak-ng not found (tried {self.path!r}); install espeak-ng."
                          ) from e
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Synth.argtypes = [
                ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, None, options)
        if self.rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {self.rate}).")
        self.lib.espeak_SetSynthCallback(self._callback)
        self._libc.srand(1)

    def _voice_identifiers(self) -> dict[str, str]:
        """Language tag (e.g. "fr-fr") -> voice file identifier (e.g. "roa/fr")."""
        self.lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_VoiceInfo))
        voices = self.lib.espeak_ListVoices(None)
        out: dict[str, str] = {}
        i = 0
        while voices[i]:
            info = voices[i].contents
            raw = ctypes.string_at(info.languages, 64)
            j = 0
            while j < len(raw) and raw[j] != 0:  # entries: priority byte, tag, NUL
                tag = raw[j + 1:].split(b"\0")[0]
                out.setdefault(tag.decode(), info.identifier.decode())
                j += len(tag) + 2
            i += 1
        return out

    def _on_synth(self, wav, numsamples, events) -> int:
        if numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                name = bytes(event.id.string).split(b"\0")[0].decode("utf-8", "replace")
                self._events.append((name, event.audio_position))
            i += 1
        return 0

    def synth(self, text: str, voice: Voice) -> tuple[np.ndarray, list[tuple[str, int]]]:
        with self.lock:
            self._load()
            name = self.identifiers.get(voice.espeak_voice, voice.espeak_voice)
            name += (f"+{voice.variant}" if voice.variant else "")
            if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {name!r}.")
            for param, value in ((_RATE, voice.rate), (_PITCH, voice.pitch),
                                 (_RANGE, voice.pitch_range)):
                self.lib.espeak_SetParameter(param, value, 0)
            self._chunks, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            buf = ctypes.create_string_buffer(data)
            err = self.lib.espeak_Synth(buf, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed with code {err} for {text!r}.")
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return audio.astype(np.int16), list(self._events)


def _private_copy() -> str:
    """A copy of libespeak-ng that only this engine loads, by absolute path.

    Loading by name would hand back any instance already in the process with the same soname
    (phonemizer loads its own copy), and unloading/terminating that one deadlocks it. A private
    file is a private instance, so it can be unloaded and reloaded freely.
    """
    import dlinfo  # installed with phonemizer

    name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
        source = dlinfo.DLInfo(ctypes.CDLL(name)).path
    except OSError as e:
        raise OSError(f"libespeak-ng not found (tried {name!r}); install espeak-ng "
                      "(sudo apt-get install -y espeak-ng).") from e
    folder = tempfile.mkdtemp(prefix="lipjax-espeak-")
    atexit.register(shutil.rmtree, folder, True)
    target = os.path.join(folder, "libespeak-ng-lipjax.so")
    shutil.copyfile(source, target)
    return target


_ENGINE: _Engine | None = None


def _forget_engine_after_fork() -> None:
    """A forked child must not terminate its parent's engine: the library's worker threads
    did not survive the fork and its shutdown would wait on them forever. The child starts a
    fresh engine (its own private copy) on first use instead."""
    global _ENGINE
    _ENGINE = None


os.register_at_fork(after_in_child=_forget_engine_after_fork)


def _engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


@functools.cache
def _resampler(rate: int) -> tuple[int, int, np.ndarray]:
    """resample_poly's default anti-aliasing filter for rate -> 16 kHz, designed once."""
    gcd = math.gcd(SAMPLE_RATE, rate)
    up, down = SAMPLE_RATE // gcd, rate // gcd
    max_rate = max(up, down)
    taps = signal.firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    return up, down, taps


def synthesize(text: str, voice: Voice) -> Utterance:
    """Speaks `text`; returns 16 kHz int16 audio and timed phones (silences/pauses dropped).

    A phone lasts from its event to the next event; the last one ends with the audio.
    """
    engine = _engine()
    raw, events = engine.synth(text, voice)
    up, down, taps = _resampler(engine.rate)
    audio = signal.resample_poly(raw.astype(np.float32), up, down, window=taps)
    audio = np.clip(np.round(audio), -32768, 32767).astype(np.int16)
    duration = len(audio) / SAMPLE_RATE
    names = [clean_phone(name) for name, _ in events]
    times = [pos / 1000.0 for _, pos in events] + [duration]
    # espeak-ng reports a stop at its release: the closure (silence) sits at the end of the
    # previous phone's interval, so the stop's interval is moved back to cover it.
    for i in range(1, len(names)):
        if names[i][:1] in _STOPS:
            times[i] -= min(_CLOSURE_S, 0.5 * (times[i] - times[i - 1]))
    phones = []
    for phone, start, end in zip(names, times[:-1], times[1:], strict=True):
        if phone and end > start:
            phones.append(PhoneTiming(phone, start, min(end, duration)))
    return Utterance(audio, phones)
