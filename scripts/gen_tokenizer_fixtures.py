#!/usr/bin/env python3
"""Generate the tokenizer golden fixtures: what HuggingFace `tokenizers` says, for the C++ tokenizer to match.

Run from the repo root:  .venv/bin/python scripts/gen_tokenizer_fixtures.py
Writes tests/fixtures/tokenizer/ (deterministic; needs tokenizers 0.23.x and ../shared/data):

  corpus.json                      the strings every tokenizer is checked on: WikiText-2 lines and chunks, code,
                                   emoji, CJK, Arabic, combining marks, odd whitespace, digit runs, contractions
                                   in several cases, special tokens inside text.
  <name>/tokenizer.json            small tokenizers trained here on WikiText-2 valid (vocab < 1100, so they can
                                   be committed), one per tokenizer.json layout the real models ship:
      sp_llama2_legacy             SentencePiece-style BPE, byte_fallback + fuse_unk, Llama-2's older layout:
                                   normalizer Sequence[Prepend("▁"), Replace(" ", "▁")], no pre-tokenizer,
                                   decoder Sequence[Replace, ByteFallback, Fuse, Strip], TemplateProcessing "<s> $A";
                                   plus two added tokens with normalized=true (<pad>, lstrip "lobster"), which
                                   HF matches and decodes in their normalized ("▁"-prefixed) form.
      sp_metaspace_first           the same model in the newer layout (TinyLlama/Mistral as converted today):
                                   Metaspace(prepend_scheme "first", split false), same decoder and template.
      sp_metaspace_always          Metaspace(prepend_scheme "always", split true) + Metaspace decoder, and a
                                   BertProcessing post-processor (<s> A </s>) to cover that processor.
      bl_llama3                    byte-level BPE in Llama-3's layout: Sequence[Split(Llama-3 regex), ByteLevel
                                   (use_regex false)], ignore_merges, merges as [a, b] pairs, a few vocab
                                   entries no merge path reaches (so ignore_merges shows), Sequence[ByteLevel,
                                   TemplateProcessing "<|begin_of_text|> $A"].
      bl_qwen2                     byte-level BPE in Qwen2's layout: NFC normalizer, Qwen2's regex (\\p{N} one
                                   at a time), merges as "a b" strings, ByteLevel post-processor, plus added
                                   tokens with lstrip / rstrip / single_word / normalized=true to cover
                                   HuggingFace's added-token rules.
      bl_roberta                   byte-level BPE with ByteLevel(add_prefix_space=true) pre-tokenizer,
                                   RobertaProcessing (<s> A </s>) and an lstrip <mask>, as RoBERTa ships them.
  expected/<name>.json             per tokenizer, per corpus string: ids with and without the post-processor,
                                   decode (with and without skip_special_tokens), whether decode(encode(x)) == x;
                                   plus vocab_size (with added tokens) and id <-> token samples. <name> also
                                   covers gpt2 (the real GPT-2 tokenizer.json in ../shared/data/models, and
                                   transformers' GPT2 tokenizer built from encoder.json + vocab.bpe, checked
                                   here to give the same ids).
  nfc_cases.json                   random strings of bases, combining marks (out of canonical order too), jamo,
                                   precomposed letters and singletons, with Python's NFC and NFD of each.
  wikitext2_test_gpt2.json         the whole WikiText-2 test.txt encoded by GPT-2 as one string: count, FNV-1a
                                   64 of the ids (each id as 4 little-endian bytes) and the first/last 1000 ids.

With --nfc-tables it also rewrites src/tokenizer/unicode_nfc_tables.inc (canonical decompositions, combining
classes and compositions from this Python's unicodedata) used by the C++ NFC normalizer.
"""

import argparse
import json
import os
import random
import sys
import time
import unicodedata

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("QB_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def read_lines(name):
    with open(os.path.join(SHARED, "wikitext-2", name), encoding="utf-8") as f:
        return f.read().split("\n")


def build_corpus():
    hand = [
        "", " ", "  ", "\n", "\t", "\r\n", "Hello world", " Hello world", "Hello world ", "Hello  world",
        "   leading spaces", "trailing spaces   ", "many     inner      spaces", "a\nb", "a\n\nb", "a \n b",
        "line1\r\nline2\r\n", "tab\tseparated\tvalues\t", "  \t \n mixed  \n\n  whitespace\t", "\n\n\n",
        " \n \n ", "end with newline\n", "\u00a0non-breaking\u00a0space", "ideographic\u3000space",
        "zero\u200bwidth joiner\u200d", "line\u2028separator", "ctrl\x00\x01\x1f\x7fchars",
        # contractions in several cases
        "I'm sure you're right, he'll see it's fine.", "don't DON'T Don'T dON't", "IT'S HE'LL THEY'RE WE'VE I'D I'M",
        "She'S you'Re we'Ve they'Ll", "'s 't 're 've 'm 'll 'd", "rock'n'roll o'clock y'all",
        "it'\u017f long s and 'K Kelvin", "quotes 'single' and \"double\" and `back`",
        # digits
        "12345678901234567890", "3.14159 2.71828", "1,000,000 and 1 000 000", "year 2024, page 7",
        "a1b2c3d4", "\u0663\u0664\u0665 Arabic-Indic digits", "\u2460\u2461\u2462 circled", "\u00bd \u00be fractions",
        "0x1F 0b1010 1e-9 -42", "v1.2.3-rc4",
        # code
        "def foo(x):\n    return x**2 + 1  # comment\n",
        "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
        "<div class=\"x\">&amp; &lt;tag&gt;</div>", "SELECT * FROM t WHERE id='5';",
        "x = {'a': [1, 2, 3], \"b\": None}\n\n\n", "    indented\n        more indented\n", "#include <vector>\nint main() { return 0; }",
        "https://example.com/path?q=1&r=two#frag", "user@example.org", "!!!???...,,,;;;",
        # emoji and symbols
        "I love \U0001F355 and \U0001F389!", "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 family",
        "\U0001F1FA\U0001F1F8\U0001F1EF\U0001F1F5 flags", "\U0001F600\U0001F600\U0001F600", "\u2764\ufe0f heart",
        "math \u2211 \u222b \u221e \u2260 \u2264", "\u20ac100 \u00a350 \u00a5 $5",
        # CJK, Arabic, other scripts
        "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002",
        "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8", "\u4e2d\u6587 mixed with English words \u548c\u6570\u5b57 123",
        "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
        "\u0627\u0644\u0633\u0644\u0627\u0645 \u0639\u0644\u064a\u0643\u0645",
        "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440", "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 \u039a\u03cc\u03c3\u03bc\u03b5",
        "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
        "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
        # combining marks and normalization-sensitive text
        "e\u0301 vs \u00e9", "A\u030a ring and \u212b angstrom", "n\u0303o", "q\u0323\u0307 dot order q\u0307\u0323",
        "Z\u0335\u0322a\u0336l\u0337g\u0338o\u0334 t\u0335e\u0336x\u0337t", "\u1100\u1161\u11a8 jamo and \uac01",
        "\u2126 ohm \u03a9 omega", "\ufb01 ligature", "\u1e9b\u0323 long s dot", "caf\u00e9 cafe\u0301",
        # special tokens inside text (each tokenizer knows some of them)
        "<|endoftext|>", "Hello<|endoftext|>world", " <|endoftext|> ", "a<|endoftext|><|endoftext|>b",
        "<s>Hello</s>", "text <s> more </s> end", "<unk>", " <s>  spaced </s>  ",
        "<|begin_of_text|>Hi<|end_of_text|>", "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
        "fill <mask> and  <mask>here", "<mask>", "left   <|sep|>   right", "[rs]   x", "a[rs] b",
        "word hello there ahello hellothere hello!", "say Hello World now", "the European lobster , lobsters and  lobster", "x <pad> y<pad><pad>", "\u00e9te\u0301 and \u00e9t\u00e9 and ete",
        # metaspace-sensitive
        "\u2581already\u2581has\u2581meta", "\u2581", " \u2581 ", "x\u2581\u2581y",
        # long words (beyond the BPE cache's word length)
        "a" * 300, "supercalifragilisticexpialidocious" * 5, "\U0001F600" * 70,
    ]
    valid = [l for l in read_lines("valid.txt") if l.strip()]
    test = [l for l in read_lines("test.txt") if l.strip()]
    wiki = [l for l in valid[::97] if len(l) < 700][:24] + [l for l in test[::211] if len(l) < 700][:8]
    test_lines = read_lines("test.txt")
    chunks = ["\n".join(test_lines[i:i + 6]) for i in (0, 120, 777)]
    return hand + wiki + chunks


def sp_model_parts():
    """Vocab and merges of a SentencePiece-style BPE: <unk> <s> </s>, 256 byte tokens, then trained pieces."""
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=600, limit_alphabet=80, show_progress=False)
    trained.train([os.path.join(SHARED, "wikitext-2", "valid.txt")], trainer)
    model = json.loads(trained.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for token, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return vocab, merges


def sp_tokenizer(vocab, merges, layout):
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    sp_decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
    bos_template = processors.TemplateProcessing(single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1",
                                                 special_tokens=[("<s>", 1)])
    if layout == "legacy":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
        tok.decoder = sp_decoder
        tok.post_processor = bos_template
    elif layout == "first":
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
        tok.decoder = sp_decoder
        tok.post_processor = bos_template
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
        tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
        tok.post_processor = processors.BertProcessing(("</s>", 2), ("<s>", 1))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    if layout == "legacy":
        # Tokens a fine-tune might add, normalized=true: matched (and decoded) in their Prepend-ed form.
        tok.add_special_tokens([AddedToken("<pad>", special=True, normalized=True)])
        tok.add_tokens([AddedToken("lobster", special=False, normalized=True, lstrip=True)])
    return tok


def byte_level_tokenizer(pattern, extra_vocab, specials):
    """Trains a small byte-level BPE with a Split(pattern) + ByteLevel(use_regex=False) pre-tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=800, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train([os.path.join(SHARED, "wikitext-2", "valid.txt")], trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = dict(model["vocab"])
    for token in extra_vocab:  # whole words no merge path reaches: only ignore_merges finds them
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return vocab, merges, specials


def byte_map(text):
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, (chr(c) for c in cs)))
    return "".join(table[b] for b in text.encode("utf-8"))


def make_llama3():
    extra = [byte_map(w) for w in (" Hello", " world", " love", " family", "ing the", " supercalifragilistic",
                                    " \u4f60\u597d", "hello")]
    vocab, merges, _ = byte_level_tokenizer(LLAMA3_PATTERN, extra, None)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in ("<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                                      "<|eot_id|>")])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|>:0 $A:0",
                                      pair="<|begin_of_text|>:0 $A:0 <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    return tok


def make_qwen2():
    vocab, merges, _ = byte_level_tokenizer(QWEN2_PATTERN, [], None)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")])
    tok.add_special_tokens([AddedToken("<|sep|>", special=True, normalized=False, lstrip=True, rstrip=True),
                            AddedToken("[rs]", special=True, normalized=False, rstrip=True)])
    tok.add_tokens([AddedToken("hello", special=False, normalized=True, single_word=True),
                    AddedToken("\u00e9t\u00e9", special=False, normalized=True),
                    AddedToken("Hello World", special=False, normalized=False)])
    return tok


def make_roberta():
    vocab, merges, _ = byte_level_tokenizer(LLAMA3_PATTERN, [], None)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in ("<s>", "<pad>", "</s>", "<unk>")])
    tok.add_special_tokens([AddedToken("<mask>", special=True, normalized=False, lstrip=True)])
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")),
                                                      trim_offsets=True, add_prefix_space=True)
    return tok


def merges_as_strings(path):
    """Rewrites the saved merges as "a b" strings, the older format (Qwen2's files use it)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    data["model"]["merges"] = [" ".join(m) for m in data["model"]["merges"]]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)


def save(tok, name, string_merges=False):
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "tokenizer.json")
    tok.save(path, pretty=True)
    if string_merges:
        merges_as_strings(path)
    return Tokenizer.from_file(path)  # expectations come from the file the C++ side reads


def expectations(tok, corpus, source):
    encode, encode_plain, decode, decode_skip, roundtrip = [], [], [], [], []
    for text in corpus:
        ids = tok.encode(text, add_special_tokens=True).ids
        plain = tok.encode(text, add_special_tokens=False).ids
        encode.append(ids)
        encode_plain.append(plain)
        decode.append(tok.decode(ids, skip_special_tokens=False))
        decode_skip.append(tok.decode(ids, skip_special_tokens=True))
        roundtrip.append(tok.decode(plain, skip_special_tokens=False) == text)
    size = tok.get_vocab_size(with_added_tokens=True)
    sample_ids = sorted(set(list(range(0, size, max(1, size // 40))) + [size - 1]))
    return {
        "source": source,
        "vocab_size": size,
        "id_to_token": {str(i): tok.id_to_token(i) for i in sample_ids},
        "encode": encode,
        "encode_plain": encode_plain,
        "decode": decode,
        "decode_skip": decode_skip,
        "roundtrip": roundtrip,
    }


def write_json(path, data):
    """One corpus entry per line: readable diffs, small files."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n")
        items = list(data.items())
        for n, (key, value) in enumerate(items):
            sep = ",\n" if n + 1 < len(items) else "\n"
            if isinstance(value, list) and value and isinstance(value[0], (list, str, bool)):
                body = ",\n  ".join(json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in value)
                f.write(f' {json.dumps(key)}: [\n  {body}\n ]{sep}')
            else:
                f.write(f' {json.dumps(key)}: {json.dumps(value, ensure_ascii=False, separators=(",", ":"))}{sep}')
        f.write("}\n")


def fnv1a64(ids):
    h = 0xCBF29CE484222325
    for i in ids:
        for byte in int(i).to_bytes(4, "little", signed=True):
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def gpt2_expectations(corpus):
    gpt2 = Tokenizer.from_file(os.path.join(SHARED, "models", "gpt2-tiny-wikitext", "tokenizer.json"))
    expected = expectations(gpt2, corpus, "shared/data/models/gpt2-tiny-wikitext/tokenizer.json")
    # transformers' GPT-2 tokenizer from OpenAI's two files must agree, so one expectation covers both.
    from transformers import GPT2Tokenizer  # transformers 5: the tokenizers-backed class takes vocab=, merges=
    files = GPT2Tokenizer(vocab=os.path.join(SHARED, "gpt2-tokenizer", "encoder.json"),
                          merges=os.path.join(SHARED, "gpt2-tokenizer", "vocab.bpe"))
    assert len(files) == 50257 and files.encode("Hello world") == [15496, 995], "transformers did not read the files"
    for text, ids in zip(corpus, expected["encode"]):
        assert files.encode(text) == ids, f"GPT-2 from files differs on {text!r}"
        assert files.backend_tokenizer.decode(ids, skip_special_tokens=False) == gpt2.decode(ids, skip_special_tokens=False)
    assert len(files) == expected["vocab_size"]
    assert all(expected["roundtrip"]), "GPT-2 byte-level BPE must be lossless"
    with open(os.path.join(SHARED, "wikitext-2", "test.txt"), encoding="utf-8") as f:
        text = f.read()
    start = time.perf_counter()
    ids = gpt2.encode(text, add_special_tokens=False).ids
    seconds = time.perf_counter() - start
    print(f"tokenizers encoded wikitext-2 test.txt ({len(text.encode())} bytes) into {len(ids)} ids in {seconds:.3f} s")
    wiki = {"source": "shared/data/wikitext-2/test.txt, whole file as one string, add_special_tokens false",
            "bytes": len(text.encode("utf-8")), "count": len(ids), "fnv1a64": fnv1a64(ids),
            "first": ids[:1000], "last": ids[-1000:]}
    return expected, wiki


def nfc_cases():
    pool = list("aeiouAEOnNcCsSzZkK") + [chr(c) for c in range(0x300, 0x370, 3)] + \
        ["\u0323", "\u0327", "\u0328", "\u031b", "\u0345", "\u05b0", "\u05b8", "\u0e38", "\u0e48", "\u1dce"] + \
        [chr(c) for c in (0x1100, 0x1112, 0x1161, 0x1175, 0x11a8, 0x11c2, 0xac00, 0xd7a3, 0xac1c)] + \
        list("\u00e9\u00c5\u212b\u2126\u1e9b\u0958\u2adc\u1f80\u01d5\u0344\u0f73\uf900\u30ac\u304b\u3099") + \
        ["\U0001d15e", "\U000110ab", "\U00011131", "\u0915", "\u093c"]
    rng = random.Random(20240601)
    cases = []
    for _ in range(400):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))
        cases.append({"input": text, "nfc": unicodedata.normalize("NFC", text),
                      "nfd": unicodedata.normalize("NFD", text)})
    return cases


def write_nfc_tables(path):
    decomp, ccc, comp = [], [], []
    for cp in range(0x110000):
        ch = chr(cp)
        c = unicodedata.combining(ch)
        if c:
            ccc.append((cp, c))
        if 0xAC00 <= cp <= 0xD7A3:
            continue  # Hangul syllables are algorithmic
        d = unicodedata.decomposition(ch)
        if d and not d.startswith("<"):
            full = unicodedata.normalize("NFD", ch)
            decomp.append((cp, [ord(x) for x in full]))
            parts = [int(x, 16) for x in d.split()]
            # A primary composite: a pair mapping that NFC keeps (composition exclusions decompose).
            if len(parts) == 2 and unicodedata.normalize("NFC", ch) == ch:
                comp.append((parts[0], parts[1], cp))
    ranges = []
    for cp, c in ccc:
        if ranges and ranges[-1][1] == cp - 1 and ranges[-1][2] == c:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp, c])
    pool, entries = [], []
    for cp, seq in decomp:
        entries.append((cp, len(pool), len(seq)))
        pool.extend(seq)
    comp.sort()
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"// Generated by scripts/gen_tokenizer_fixtures.py --nfc-tables from Python's unicodedata "
                f"{unicodedata.unidata_version}. Do not edit.\n")
        f.write("// kCombiningClassRanges: {first, last, ccc} sorted; kDecompositions: {code point, offset, length}\n")
        f.write("// into kDecompositionPool (full canonical decompositions, Hangul excluded); kCompositions:\n")
        f.write("// {first, second, composite} sorted, primary composites only (exclusions already removed).\n")
        def table(name, rows, per_line):
            f.write(f"static const uint32_t {name}[][3] = {{\n")
            cells = ["{" + ",".join(rows_cell) + "}" for rows_cell in rows]
            for i in range(0, len(cells), per_line):
                f.write(",".join(cells[i:i + per_line]) + ",\n")
            f.write("};\n")

        table("kCombiningClassRanges", [(f"0x{a:X}", f"0x{b:X}", str(c)) for a, b, c in ranges], 6)
        table("kDecompositions", [(f"0x{a:X}", str(b), str(c)) for a, b, c in entries], 6)
        f.write("static const uint32_t kDecompositionPool[] = {\n")
        for i in range(0, len(pool), 12):
            f.write(",".join(f"0x{x:X}" for x in pool[i:i + 12]) + ",\n")
        f.write("};\n")
        table("kCompositions", [(f"0x{a:X}", f"0x{b:X}", f"0x{c:X}") for a, b, c in comp], 4)
    print(f"wrote {path}: {len(ranges)} ccc ranges, {len(entries)} decompositions, {len(comp)} compositions")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nfc-tables", action="store_true", help="also rewrite src/tokenizer/unicode_nfc_tables.inc")
    args = parser.parse_args()
    if args.nfc_tables:
        write_nfc_tables(os.path.join(ROOT, "src", "tokenizer", "unicode_nfc_tables.inc"))

    os.makedirs(os.path.join(OUT, "expected"), exist_ok=True)
    corpus = build_corpus()
    with open(os.path.join(OUT, "corpus.json"), "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(s, ensure_ascii=False) for s in corpus) + "\n]\n")

    with open(os.path.join(OUT, "nfc_cases.json"), "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in nfc_cases()) + "\n]\n")

    gpt2, wiki = gpt2_expectations(corpus)
    write_json(os.path.join(OUT, "expected", "gpt2.json"), gpt2)
    write_json(os.path.join(OUT, "wikitext2_test_gpt2.json"), wiki)

    vocab, merges = sp_model_parts()
    built = {
        "sp_llama2_legacy": save(sp_tokenizer(vocab, merges, "legacy"), "sp_llama2_legacy"),
        "sp_metaspace_first": save(sp_tokenizer(vocab, merges, "first"), "sp_metaspace_first"),
        "sp_metaspace_always": save(sp_tokenizer(vocab, merges, "always"), "sp_metaspace_always"),
        "bl_llama3": save(make_llama3(), "bl_llama3"),
        "bl_qwen2": save(make_qwen2(), "bl_qwen2", string_merges=True),
        "bl_roberta": save(make_roberta(), "bl_roberta"),
    }
    for name, tok in built.items():
        expected = expectations(tok, corpus, f"tests/fixtures/tokenizer/{name}/tokenizer.json")
        if name == "bl_llama3":
            assert all(expected["roundtrip"]), "the Llama-3 layout has no normalizer: it must be lossless"
        write_json(os.path.join(OUT, "expected", f"{name}.json"), expected)
        print(f"{name}: vocab {expected['vocab_size']}, {len(corpus)} strings, "
              f"{sum(len(x) for x in expected['encode'])} ids, lossless on {sum(expected['roundtrip'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
