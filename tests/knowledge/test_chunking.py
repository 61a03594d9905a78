"""Heading-aware chunking: structure kept, size bounded, ids stable."""
from knowledge.chunking import MAX_CHARS, chunk_document
from knowledge.documents import Document


def doc(text: str, title: str = "Guide") -> Document:
    return Document(id="guide", source="s", title=title, text=text)


def test_sections_carry_their_heading_path():
    text = "# Guide\n\nIntro " + "x " * 150 + "\n\n## Delivery\n\n" + "Ships fast. " * 30 + \
           "\n\n### Belgium\n\n" + "Three to five days. " * 20
    chunks = chunk_document(doc(text))
    assert [c.heading for c in chunks] == ["", "Delivery", "Delivery › Belgium"]
    assert chunks[2].text.startswith("Three to five days.")


def test_long_sections_are_cut_under_the_bound_at_word_boundaries():
    words = " ".join(f"word{i}" for i in range(2000))
    chunks = chunk_document(doc(f"## Long\n\n{words}"))
    assert len(chunks) > 1
    assert all(len(c.text) <= MAX_CHARS for c in chunks)
    assert " ".join(c.text for c in chunks).split() == words.split()  # nothing lost, no word cut


def test_chinese_without_spaces_is_cut_at_sentence_ends():
    text = "## 配送\n\n" + "我们在两到三个工作日内发货。" * 200
    chunks = chunk_document(doc(text))
    assert all(len(c.text) <= MAX_CHARS for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)


def test_ids_are_stable_and_hashes_follow_content():
    text = "## A\n\n" + "alpha " * 100 + "\n\n## B\n\n" + "beta " * 100
    first, again = chunk_document(doc(text)), chunk_document(doc(text))
    assert [c.id for c in first] == [c.id for c in again] == ["guide#0", "guide#1"]
    edited = chunk_document(doc(text.replace("beta", "gamma")))
    assert first[0].content_hash("Guide") == edited[0].content_hash("Guide")
    assert first[1].content_hash("Guide") != edited[1].content_hash("Guide")


def test_hash_lines_inside_code_blocks_are_not_headings():
    text = "## Setup\n\n```sh\n# not a heading\nmake\n```\n\nMore text here."
    chunks = chunk_document(doc(text))
    assert len(chunks) == 1 and "# not a heading" in chunks[0].text


def test_tiny_sections_are_merged_with_their_sibling():
    text = "## Returns\n\n### Window\n\n30 days.\n\n### Cost\n\nFree from France."
    chunks = chunk_document(doc(text))
    assert len(chunks) == 1
    assert "30 days." in chunks[0].text and "Free from France." in chunks[0].text
