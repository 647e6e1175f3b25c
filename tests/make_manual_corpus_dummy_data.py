"""Writes the real-corpus builders' dummy_data/ in each corpus's on-disk layout (tiny media).

Run from the repository root: `.venv/bin/python -m tests.make_manual_corpus_dummy_data`.
Speech is espeak-ng (real phonetic content for the acoustic units); face videos are a crop of
scikit-image's astronaut photo (a real face for the landmark detector) with a little jitter.
Each corpus includes broken items that its test expects to be skipped and counted.
"""

from __future__ import annotations

import fractions
import pathlib
import shutil
import subprocess
import tempfile

import av
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1] / "data_builders"
SR = 16_000


def speech(text: str, voice: str = "en-us") -> np.ndarray:
    """int16 16 kHz mono speech of `text` from espeak-ng."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = pathlib.Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "280", "-w", str(wav), text], check=True)
        with av.open(str(wav)) as c:
            rs = av.AudioResampler(format="s16", layout="mono", rate=SR)
            out = [o.to_ndarray().reshape(-1) for f in c.decode(audio=0) for o in rs.resample(f)]
    audio = np.concatenate(out)
    return (audio // 16).astype(np.int16)  # quieter: fewer bits for the lossless dummy files


def _encode_audio(container, stream, audio: np.ndarray) -> None:
    frame_len = stream.codec_context.frame_size or 1024
    rate = stream.codec_context.sample_rate
    if rate != SR:  # resample for codecs that need another rate (opus: 48 kHz)
        audio = np.interp(np.arange(0, len(audio), SR / rate), np.arange(len(audio)),
                          audio).astype(np.int16)
    fmt = stream.codec_context.format.name
    layout = stream.codec_context.layout.name
    channels = 2 if layout == "stereo" else 1
    for start in range(0, len(audio), frame_len):
        chunk = audio[start:start + frame_len]
        if "flt" in fmt:
            data = np.repeat((chunk.astype(np.float32) / 32768.0)[None], channels, axis=0)
        else:
            data = chunk[None]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = fractions.Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_audio(path: pathlib.Path, audio: np.ndarray, codec: str, fmt: str | None = None,
                rate: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt) as c:
        if codec == "vorbis":  # FFmpeg's own Vorbis encoder is experimental and stereo-only
            stream = c.add_stream(codec, rate=rate, layout="stereo",
                                  options={"strict": "experimental"})
        else:
            stream = c.add_stream(codec, rate=rate, layout="mono")
        stream.codec_context.sample_rate = rate
        if codec in ("pcm_s16le", "flac"):
            stream.codec_context.format = "s16"
        if codec == "libmp3lame":
            stream.codec_context.format = "s16p"
        if codec == "vorbis":
            stream.codec_context.format = "fltp"
        _encode_audio(c, stream, audio)


def _face_frames(n: int, size: int, seed: int) -> np.ndarray:
    import skimage.data
    from PIL import Image

    gray = (skimage.data.astronaut() @ [0.299, 0.587, 0.114]).astype(np.uint8)
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        dx, dy = rng.integers(-4, 5, size=2)
        box = (120 + dx, 0 + dy, 320 + dx, 200 + dy)
        frames.append(np.asarray(Image.fromarray(gray).crop(box).resize((size, size))))
    return np.stack(frames)


def write_video(path: pathlib.Path, frames: np.ndarray, audio: np.ndarray | None = None) -> None:
    """H.264 mp4 (25 fps) of uint8 (T, H, W) gray frames, with AAC audio when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height = frames.shape[2], frames.shape[1]
        v.pix_fmt = "yuv420p"
        v.options = {"crf": "38", "preset": "veryslow"}
        a = c.add_stream("aac", rate=SR, layout="mono") if audio is not None else None
        for f in frames:
            for packet in v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f),
                                                              format="gray")):
                c.mux(packet)
        for packet in v.encode(None):
            c.mux(packet)
        if a is not None:
            _encode_audio(c, a, audio)


def face_clip(path: pathlib.Path, text: str, voice: str = "en-us", seed: int = 0,
              face: bool = True, size: int = 128) -> float:
    audio = speech(text, voice)
    n = -(-len(audio) // 640)
    if face:
        frames = _face_frames(n, size, seed)
    else:
        frames = np.random.default_rng(seed).integers(0, 255, (n, size, size), dtype=np.uint8)
        frames = (frames // 64 * 64).astype(np.uint8)
    write_video(path, frames, audio)
    return len(audio) / SR


def fresh(name: str) -> pathlib.Path:
    d = ROOT / name / "dummy_data"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def lrs3_txt(text: str, words: list[str], seconds: float = 1.0) -> str:
    """An LRS3 clip file; the word table spreads the words evenly over `seconds`."""
    step = seconds / max(1, len(words))
    rows = "".join(f"{w} {step * i + 0.02:.2f} {step * (i + 1) - 0.02:.2f} 5.0\n"
                   for i, w in enumerate(words))
    return f"Text:  {text}\nConf:  4\n\nWORD START END ASDSCORE\n{rows}"


def make_lrs3() -> None:
    d = fresh("lrs3") / "lrs3"
    clips = {
            "pretrain/Xy_z-1AbC_9/00001": "THE WORLD IS BIG {LG}",
            "trainval/aB_cD-eF0gH/00001": "HELLO THERE",
            "trainval/aB_cD-eF0gH/00005": "GOOD MORNING {NS}",
            "test/t3st_Id-0a1/00001": "THANK YOU",
    }
    for i, (cid, text) in enumerate(clips.items()):
        seconds = face_clip(d / f"{cid}.mp4", text.replace("{LG}", "").replace("{NS}", "").lower(),
                            seed=i)
        (d / f"{cid}.txt").write_text(lrs3_txt(text, text.split(), seconds), encoding="latin-1")
    # Broken items: only noise (no face), a transcript of tags only, a transcript without video.
    face_clip(d / "test/t3st_Id-0a1/00002.mp4", "noise", face=False)
    (d / "test/t3st_Id-0a1/00002.txt").write_text(lrs3_txt("NOISE", ["NOISE"]))
    face_clip(d / "trainval/k_9Zz0-Q1w2/00001.mp4", "laughter", seed=5)
    (d / "trainval/k_9Zz0-Q1w2/00001.txt").write_text(lrs3_txt("{LG}", []))
    (d / "trainval/k_9Zz0-Q1w2/00002.txt").write_text(lrs3_txt("LOST VIDEO", ["LOST", "VIDEO"]))


def make_mtedx() -> None:
    d = fresh("mtedx")
    base = d / "mtedx" / "es-es" / "data"
    splits = {
            "train": {"a_B-c1": ["hola a todos.", "", "gracias por venir"],
                      "missing-talk_1": ["no hay audio"]},
            "valid": {"vA_l-2": ["buenos días"]},
            "test": {"tE-s_t3": ["¿Qué tal?"]},
    }
    for split, talks in splits.items():
        yaml, segs, lines = [], [], []
        for talk, texts in talks.items():
            offset, pieces = 0.2, []
            for i, text in enumerate(texts):
                seg = speech(text or "eh", "es")
                dur = len(seg) / SR
                yaml.append(f"- {{duration: {dur:.2f}, offset: {offset:.2f}, speaker_id: {talk}, "
                            f"wav: {talk}.wav}}")
                segs.append(f"{talk}_{i:04d} {talk} {offset:.2f} {offset + dur:.2f}")
                lines.append(text)
                pieces += [np.zeros(int(0.2 * SR), np.int16), seg]
                offset += dur + 0.2
            if talk != "missing-talk_1":
                write_audio(base / split / "wav" / f"{talk}.flac",
                            np.concatenate([np.zeros(int(0.2 * SR), np.int16)] + pieces[1:]),
                            "flac")
        txt = base / split / "txt"
        txt.mkdir(parents=True, exist_ok=True)
        (txt / f"{split}.yaml").write_text("\n".join(yaml) + "\n")
        (txt / "segments").write_text("\n".join(segs) + "\n")
        (txt / f"{split}.es").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # MuAViC-prepared layout: 96x96 crops + 16 kHz wav, tsv listing with root line "/".
    mu = d / "muavic" / "es"
    rows = {"train": [("talkA_x-1", "talkA_x-1_0000", "hola amigos"),
                      ("talkA_x-1", "talkA_x-1_0001", "una prueba"),
                      ("talkA_x-1", "talkA_x-1_0002", "sin video")],
            "valid": [("talkB", "talkB_0000", "adiós")],
            "test": [("talkC", "talkC_0000", "hasta luego")]}
    for split, items in rows.items():
        tsv, lines = ["/"], []
        for i, (talk, seg, text) in enumerate(items):
            audio = speech(text, "es")
            a = f"audio/{split}/{talk}/{seg}.wav"
            v = f"video/{split}/{talk}/{seg}.mp4"
            write_audio(mu / a, audio, "pcm_s16le")
            n = -(-len(audio) // 640)
            if text == "sin video":
                v, n = "-1", -1
            else:
                crops = _face_frames(n, 96, seed=i)
                write_video(mu / v, crops)
            tsv.append(f"{seg}\t{v}\t{a}\t{n}\t{len(audio)}")
            lines.append(text)
        (mu / f"{split}.tsv").write_text("\n".join(tsv) + "\n")
        (mu / f"{split}.es").write_text("\n".join(lines))


def make_voxceleb2() -> None:
    d = fresh("voxceleb2") / "vox2"
    face_clip(d / "dev/mp4/id00012/21Uxsk56VDQ/00001.mp4", "one two three", seed=1)
    face_clip(d / "dev/mp4/id00012/21Uxsk56VDQ/00002.mp4", "four five six", seed=2)
    write_audio(d / "dev/aac/id00012/21Uxsk56VDQ/00001.m4a", speech("one two three"), "aac")
    face_clip(d / "dev/mp4/id00015/0_aB-cD1eF2g/00001.mp4", "seven eight", seed=3)
    (d / "dev/mp4/id00015/0_aB-cD1eF2g/00002.mp4").write_bytes(b"not an mp4 file")
    face_clip(d / "mp4/id00017/xY_-zz01Q9w/00001.mp4", "nine ten", seed=4)
    (d.parent / "vox2_meta.csv").write_text(
            "VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \n"
            "id00012 ,n000012 ,m ,dev \nid00015 ,n000015 ,f ,dev \nid00017 ,n000017 ,m ,test \n")


def make_mls() -> None:
    d = fresh("mls")
    for lang, voice, ext, codec in (("spanish", "es", "flac", "flac"),
                                    ("portuguese", "pt", "opus", "libopus")):
        root = d / (f"mls_{lang}" if ext == "flac" else f"mls_{lang}_opus")
        texts = {"train": ["oh mi querida amiga", "el libro es bueno", "sin audio"],
                 "dev": ["la casa blanca"], "test": ["buenas noches"]}
        for k, (split, lines) in enumerate(texts.items()):
            trans, segs = [], []
            for i, text in enumerate(lines):
                spk, book = ("4800", "10003") if i % 2 == 0 else ("12", "345")
                uid = f"{spk}_{book}_{10 * k + i:06d}"
                trans.append(f"{uid}\t{text}")
                segs.append(f"{uid}\thttp://example.org/{book}.mp3\t1.0\t3.0")
                if text != "sin audio":
                    path = root / split / "audio" / spk / book / f"{uid}.{ext}"
                    write_audio(path, speech(text, voice), codec,
                                rate=48_000 if ext == "opus" else SR)
            (root / split).mkdir(parents=True, exist_ok=True)
            (root / split / "transcripts.txt").write_text("\n".join(trans) + "\n")
            (root / split / "segments.txt").write_text("\n".join(segs) + "\n")
        ls = root / "train" / "limited_supervision"
        (ls / "9hr").mkdir(parents=True, exist_ok=True)
        (ls / "9hr" / "handles.txt").write_text("4800_10003_000000\n")
        (ls / "1hr" / "0").mkdir(parents=True, exist_ok=True)
        (ls / "1hr" / "0" / "handles.txt").write_text("4800_10003_000000\n")
        (root / "metainfo.txt").write_text(
                "SPEAKER   |   GENDER   | PARTITION  |  MINUTES   |  BOOK ID   | TITLE | CHAPTER\n"
                "  4800    |     F      |   train    |   0.010    |   10003    | Libro | Uno\n")


def make_common_voice() -> None:
    d = fresh("common_voice") / "cv-corpus-17.0-2024-03-15" / "it"
    header = ("client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage"
              "\tgender\taccents\tvariant\tlocale\tsegment")
    rows = {"train": [("c1a", 1, "Buongiorno a tutti."), ("c2b", 2, ""), ("c1a", 3, "Ciao!"),
                      ("c3c", 4, "Manca il file \"audio\"")],
            "dev": [("c4d", 5, "Arrivederci")], "test": [("c5e", 6, "Grazie mille")]}
    for split, items in rows.items():
        lines = [header]
        for client, n, text in items:
            name = f"common_voice_it_{n}.mp3"
            if n != 4:
                write_audio(d / "clips" / name, speech(text or "eh", "it"), "libmp3lame",
                            rate=48_000)
            lines.append(f"{client}\t{name}\tsid{n}\t{text}\t\t2\t0\t\t\t\t\tit\t")
        (d / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    (d / "validated.tsv").write_text(header + "\n")


def make_voxpopuli() -> None:
    d = fresh("voxpopuli") / "transcribed_data" / "fr"
    header = ("id\traw_text\tnormalized_text\tspeaker_id\tsplit\tgender\tis_gold_transcript"
              "\taccent")
    rows = {"train": [("20180111-0900-PLENARY-15-fr_20180111-17:08:12_0", "Merci, Monsieur.",
                       "merci monsieur"),
                      ("20180111-0900-PLENARY-15-fr_20180111-17:09:40_3", "Bonjour à tous.", ""),
                      ("20190215-0900-PLENARY-3-fr_20190215-10:00:01_1", "", "")],
            "dev": [("20180312-0900-PLENARY-7-fr_20180312-18:01:02_2", "Oui.", "oui")],
            "test": [("20180312-0900-PLENARY-7-fr_20180312-18:05:02_0", "Non.", "non")]}
    for split, items in rows.items():
        lines = [header]
        for uid, raw, norm in items:
            write_audio(d / uid[:4] / f"{uid}.ogg", speech(norm or raw or "euh", "fr"), "vorbis",
                        fmt="ogg")
            lines.append(f"{uid}\t{raw}\t{norm}\t96{len(lines)}\t{split}\tfemale\tTrue\tNone")
        (d / f"asr_{split}.tsv").write_text("\n".join(lines) + "\n")


def make_lrw() -> None:
    d = fresh("lrw") / "lipread_mp4"
    seed = 0
    for word in ("ABOUT", "WORLD"):
        for split in ("train", "val", "test"):
            seed += 1
            stem = d / word / split / f"{word}_00001"
            face_clip(stem.with_suffix(".mp4"), word.lower(), seed=seed)
            stem.with_suffix(".txt").write_text(
                    f"Text: {word}\nConf: 3\n\nWORD START END ASDSCORE\n"
                    f"{word} 0.42 0.78 2.1\nDuration: 0.36 seconds\n")
    (d / "ABOUT/train/ABOUT_00002.txt").write_text("Text: ABOUT\nDuration: 0.30 seconds\n")


if __name__ == "__main__":
    for make in (make_lrs3, make_mtedx, make_voxceleb2, make_mls, make_common_voice,
                 make_voxpopuli, make_lrw):
        make()
        print(make.__name__, "done")
