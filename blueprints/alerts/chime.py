"""The desk's alert sound: a short two-note chime, synthesised here (no third-party asset).

``python -m blueprints.alerts.chime static/sounds/alert.wav`` writes it (the Makefile
does, on ``make setup``). The output is the same bytes every time, so the committed
file can be checked against this code (tests/test_alerts.py).
"""

from __future__ import annotations

import io
import math
import struct
import sys
import wave
from pathlib import Path

RATE = 16000  # Hz: plenty for two notes under 1.5 kHz, and keeps the file ~12 KB
NOTES = ((880.0, 0.0, 0.32), (1318.5, 0.12, 0.40))  # (Hz, start s, end s): A5 then E6
VOLUME = 0.32  # of full scale: a nudge, not an alarm
DURATION = 0.40


def samples() -> list[int]:
    count = int(RATE * DURATION)
    out = []
    for i in range(count):
        t = i / RATE
        value = 0.0
        for freq, start, end in NOTES:
            if start <= t < end:
                local = t - start
                attack = min(1.0, local / 0.005)  # 5 ms fade-in: no click
                release = min(1.0, (end - t) / 0.02)  # 20 ms fade-out
                value += math.sin(2 * math.pi * freq * local) * math.exp(-local * 9) * attack * release
        out.append(max(-32767, min(32767, round(value * VOLUME * 32767))))
    return out


def chime_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        data = samples()
        wav.writeframes(struct.pack(f"<{len(data)}h", *data))
    return buffer.getvalue()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m blueprints.alerts.chime OUTPUT.wav", file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(chime_wav())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
