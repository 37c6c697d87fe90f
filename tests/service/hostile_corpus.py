"""The bad videos of the hostile-input tests, made on the spot, each with the answer it must get.

Decisions: the content decides, never the file name (a Matroska clip named .mp4 is scored); a single
frame is a clip (scored like the first frame of any clip); a file cut short is refused when its
header says so, else scored as what it holds, and refused when junk follows its last packet (MPEG-TS);
a clip with a display matrix is scored turned upright."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from testkit.synthetic import moving_shapes, write_video
from tests.service import bad_media

MAX_FRAMES = 2000  # the service's upload_max_frames in these tests
MAX_BYTES = 8_000_000  # and its upload_max_bytes


@dataclass
class Case:
    name: str
    filename: str  # what the client calls it
    data: bytes
    status: tuple[int, ...]  # acceptable answers
    words: tuple[str, ...]  # one of these is in the answer's detail (4xx)


def faststart_mp4(path: Path, frames: int = 100) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=25", "-frames:v",
                    str(frames), "-c:v", "libx264", "-movflags", "+faststart", str(path)], check=True)
    return path


def build(tmp: Path, good_mp4: Path) -> list[Case]:
    not_video = ("not a video file", "no video stream", "cannot be decoded", "no frame", "ends before", "at most")
    mkv = write_video(tmp / "real.mkv", moving_shapes(40, seed=1)[0], container="matroska")
    long_clip = write_video(tmp / "long.mp4", moving_shapes(MAX_FRAMES + 100, seed=2)[0])
    cases = [
        Case("zero bytes", "empty.mp4", b"", (422,), ("empty",)),
        Case("text named .mp4", "clip.mp4", b"just some words, not a video\n" * 20, (415,), ("not a video file",)),
        Case("PNG named .mp4", "clip.mp4", bad_media.still_image(tmp / "p.png").read_bytes(), (415,),
             ("still image",)),
        Case("audio only", "clip.mp4", bad_media.audio_only(tmp / "a.m4a").read_bytes(), (415,), ("only audio",)),
        Case("Matroska named .avi", "clip.avi", mkv.read_bytes(), (200,), ()),
        Case("one frame", "one.mp4", write_video(tmp / "one.mp4", moving_shapes(1)[0]).read_bytes(), (200,), ()),
        Case("zero frames", "z.mkv", bad_media.zero_frames(tmp / "z.mkv").read_bytes(), (422,), ("no frames",)),
        Case("garbage packets", "g.mkv", bad_media.garbage_frames(tmp / "g.mkv", good_mp4).read_bytes(), (422,),
             ("cannot be decoded",)),
        Case("1x1 frames", "tiny.mp4", bad_media.tiny(tmp / "tiny.mp4", "1x1").read_bytes(), (422,),
             ("at least 16 pixels",)),
        Case("rotated 90 degrees", "rot.mp4", bad_media.rotated(tmp / "rot.mp4", good_mp4, 90).read_bytes(), (200,),
             ()),
        Case("MPEG-TS, 50 frames then random bytes", "junk.ts", bad_media.junk_after(
            tmp / "junk.ts", bad_media.busy_h264(tmp / "good50.ts", "96x64", 50), 200_000).read_bytes(), (422,),
             ("is damaged",)),
        Case("8000x8000 frames", "huge.avi", bad_media.huge_frames(tmp / "huge.avi").read_bytes(), (422,),
             ("at most 4096",)),
        Case("bomb: 4096x2304 black frames", "bomb.mp4",
             bad_media.black_h264(tmp / "bomb.mp4", "4096x2304", 100).read_bytes(), (413,), ("decompression bomb",)),
        Case("bomb: 30000 tiny frames, count in the header", "many.mp4",
             bad_media.black_h264(tmp / "many.mp4", "64x48", 30_000).read_bytes(), (413,), ("declares 30000",)),
        Case("bomb: 30000 tiny frames, no count", "many.mkv",
             bad_media.black_h264(tmp / "many.mkv", "64x48", 30_000).read_bytes(), (413,),
             (f"more than {MAX_FRAMES} frames",)),
        Case("bomb: 4096x2304 black frames, MPEG-TS", "bomb.ts",
             bad_media.black_h264(tmp / "bomb.ts", "4096x2304", 500).read_bytes(), (413,), ("decompression bomb",)),
        Case(f"{MAX_FRAMES + 1} tiny frames, MPEG-TS (no count)", "many.ts",
             bad_media.black_h264(tmp / "many.ts", "16x16", MAX_FRAMES + 1).read_bytes(), (413,),
             (f"more than {MAX_FRAMES} frames",)),
        Case("very long clip", "long.mp4", long_clip.read_bytes(), (413,), (f"more than {MAX_FRAMES} frames",)),
        Case("over the size limit", "big.mp4", bytes(MAX_BYTES + 1), (413,), ("larger than the limit",)),
    ]
    fast = faststart_mp4(tmp / "fast.mp4")
    for good, what in ((good_mp4, "mp4, index at the end"), (fast, "mp4, index first"), (mkv, "mkv")):
        for keep in (0.3, 0.8):
            cut = bad_media.truncated(tmp / f"cut-{keep}-{good.name}", good, keep)
            cases.append(Case(f"{what} cut at {keep:.0%}", good.name, cut.read_bytes(), (415, 422),
                              ("cut short", *not_video)))
    for seed in range(3):
        data = bad_media.random_bytes(tmp / f"r{seed}.mp4", 200_000, seed).read_bytes()
        cases.append(Case(f"random bytes #{seed}", "r.mp4", data, (415, 422), not_video))
    return cases
