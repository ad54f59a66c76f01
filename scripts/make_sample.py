"""Generate the bundled synthetic LongLaMP sample in `data/sample/` (the real data cannot be redistributed).

The rows follow the exact public layout (parquet shards per config and split, with the source's `val` split
name) and, for the email task, the Avocado route: LaMP-style question files plus a zip archive of RFC 822
messages. Users write about their own topics with their own habits and stock phrases, and the profile items
sharing the query's topic predict the target, so retrieving from a user's own profile measurably helps on ROUGE-1,
ROUGE-L and METEOR; profiles range from empty to very large; texts carry unicode, quotes and newlines.

Usage: python scripts/make_sample.py [--output data/sample] [--seed 0]
The functions are reused by benchmarks to generate larger data of the same shape.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import random
import shutil
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from longlamp_io import replace_folder  # noqa: E402
from longlamp_tasks import TASKS  # noqa: E402

DOMAINS = {
    "astronomy": "telescope nebula orbit comet eclipse galaxy spectrum observatory meteor lens planet star".split(),
    "cooking": "sourdough braise saffron skillet marinade umami broth caramel knife oven garlic recipe".split(),
    "cycling": "derailleur cadence gravel saddle climb peloton tubeless sprint chain helmet route crank".split(),
    "chess": "gambit endgame rook bishop opening tempo sacrifice castling pawn checkmate knight blitz".split(),
    "gardening": "compost seedling mulch tomato pruning trellis perennial soil basil greenhouse roots bloom".split(),
    "jazz": "saxophone improvisation chord swing bebop rhythm trumpet solo groove bassline melody quartet".split(),
    "finance": "portfolio dividend bond inflation equity budget ledger hedge liquidity yield audit invoice".split(),
    "hiking": "trailhead ridge switchback summit backpack compass canyon blister campsite boots glacier map".split(),
    "pottery": "kiln glaze porcelain wheel clay stoneware trimming slip bisque firing vase terracotta".split(),
    "robotics": "actuator servo gripper lidar kinematics controller sensor firmware torque chassis motor arm".split(),
    "linguistics": "morpheme syntax phoneme dialect corpus grammar semantics lexicon vowel idiom accent verb".split(),
    "sailing": "spinnaker keel tack mooring halyard jib regatta harbour buoy rudder anchor windward".split(),
}
COMMON = "time people work idea result way problem method data system group question value part week".split()
VERBS = "improves reveals changes supports shapes tests balances explains follows measures builds joins".split()
TEMPLATES = [  # {p1}, {p2}: two of the user's phrases on the topic (see User)
    "The {p1} {verb} the {p2} like no {common} I know.",
    "Honestly, every {p1} needs a {p2}; the {common} follows.",
    "We studied how {p1} {verb} a {p2} over one {common}.",
    "My {p1} {verb} the {p2}; {common} was worth it.",
    "An approach to the {p1} {verb} the {p2} and the {common}.",
    "Nobody tells you the {p1} {verb} the {p2}.",
]
QUIRKS = [" 🙂", "!", " — truly.", "…", " (really)", ""]
UNICODE_WORDS = ["café", "naïve", "Zürich", "São Paulo", "Æsir", "smörgåsbord", "Kraków", "niño"]
FRIENDS = "Amara Bjorn Chiara Dmitri Esme Farid Greta Hiro Ines Jonas Keiko Lars Mina Nadia Oskar Priya".split()
PHRASES_PER_TOPIC = 4  # a user's stock phrases on each of their topics
FOCUS = 0.7  # the share of a text's phrases taken from its focus (two of the topic's phrases)
PLACES = "Lisbon Oslo Kyoto Quito Tbilisi Hobart Leeds Lyon Austin Porto Bergen Cusco Dakar Graz Perth Split".split()


class User:
    """A synthetic author: three topics they write about, and writing habits.

    Each text is about one of the user's topics, and so is the task input written for it (its title, keywords,
    product description or summary): as in the real data, the profile items that share the query's topic are
    the ones that predict the target, which is what retrieval from a profile is for.

    On each topic a user has a few stock phrases (two of the topic's words in a fixed order), as real authors
    reuse their own terms; a text is mostly about two of them (its focus, which its title names) and about as
    long as the user's other texts. The phrases are what make the signal hold beyond word counts: every text
    shares the sentence templates' words in their order, so topic words drawn one at a time raise ROUGE-1 but
    hardly the longest common subsequence (ROUGE-L) or METEOR's in-order chunks. A phrase takes the place of an
    adjective and a noun or of template words, so each template keeps its length (token limits in the tests
    rely on the texts' lengths).
    """

    def __init__(self, rng: random.Random, index: int):
        # The user's own random stream: what the caller draws next (profile sizes) does not depend on the texts.
        self.rng = random.Random(rng.getrandbits(64))
        names = list(DOMAINS)
        self.domain = names[index % len(names)]
        self.topics = [self.domain, names[(index * 5 + 3) % len(names)], names[(index * 7 + 5) % len(names)]]
        self.quirk = QUIRKS[index % len(QUIRKS)]
        self.signature = f"{self.rng.choice(UNICODE_WORDS)} {self.rng.choice(['notes', 'thoughts', 'log', 'diary'])}"
        self.friends, self.places = self.rng.sample(FRIENDS, 2), self.rng.sample(PLACES, 2)
        self.id = f"user_{index:04d}_{self.domain}"
        self.phrases = {topic: [" ".join(self.rng.sample(DOMAINS[topic], 2))
                                for _ in range(PHRASES_PER_TOPIC)] for topic in self.topics}
        self.length = self.rng.random()  # where in each task's range of lengths this user's texts lie
        self.vocabulary = {topic: sorted({w for phrase in phrases for w in phrase.split()})
                           for topic, phrases in self.phrases.items()}

    def sentences(self, low: int, high: int) -> int:
        """A text's number of sentences: near the user's habitual length, within the task's range."""
        return min(high, max(low, round(low + self.length * (high - low)) + self.rng.randint(-1, 1)))

    def topic(self) -> str:
        return self.rng.choice(self.topics)

    def words(self, topic: str, n: int = 2) -> list[str]:
        """Words of the user's own vocabulary on the topic (those of their phrases)."""
        return [self.rng.choice(self.vocabulary[topic]) for _ in range(n)]

    def phrase(self, topic: str) -> str:
        return self.rng.choice(self.phrases[topic])

    def focus(self, topic: str) -> list[str]:
        """What one text is about: two of the user's phrases on the topic, which its title names."""
        return self.rng.sample(self.phrases[topic], 2)

    def sentence(self, topic: str | None = None, focus: list[str] | None = None) -> str:
        """One sentence on the topic (a topic of the user's when None), mostly on the text's focus."""
        topic = topic or self.topic()
        focus = focus or self.phrases[topic]
        p1, p2 = (self.rng.choice(focus) if self.rng.random() < FOCUS else self.phrase(topic) for _ in range(2))
        common = self.words(topic, 1)[0] if self.rng.random() < 0.7 else self.rng.choice(COMMON)
        text = self.rng.choice(TEMPLATES).format(p1=p1, p2=p2, verb=self.rng.choice(VERBS), common=common)
        if self.rng.random() < 0.4:  # people and places that only this user writes about
            text = f"{text[:-1]}, with {self.rng.choice(self.friends)} in {self.rng.choice(self.places)}{text[-1]}"
        return text[:-1] + self.quirk + text[-1] if self.quirk and self.rng.random() < 0.3 else text

    def text(self, topic: str, focus: list[str], sentences: int, paragraphs: bool = False) -> str:
        parts = [self.sentence(topic, focus) for _ in range(sentences)]
        if self.rng.random() < 0.2:
            parts.append(f'As I always say, "{self.signature}".')
        if paragraphs:
            cut = max(1, len(parts) // 2)
            return " ".join(parts[:cut]) + "\n\n" + " ".join(parts[cut:])
        return " ".join(parts)

    def title(self, focus: list[str]) -> str:
        return f"{focus[0].capitalize()} and {focus[1]}"


def abstract_item(user: User, year: int) -> dict:
    topic = user.topic()
    focus = user.focus(topic)
    return {"id": f"{user.id}-p{user.rng.randrange(10**6)}", "title": user.title(focus),
            "abstract": user.text(topic, focus, user.sentences(6, 12)), "year": year}


def review_item(user: User, _year: int) -> dict:
    topic = user.topic()
    focus = user.focus(topic)
    return {"overall": float(user.rng.randint(1, 5)), "summary": focus[0].capitalize(),
            "description": f"A {focus[0]} with {focus[1]} for every {user.rng.choice(COMMON)}.",
            "reviewText": user.text(topic, focus, user.sentences(8, 16), paragraphs=True)}


def topic_item(user: User, _year: int) -> dict:
    topic = user.topic()
    focus = user.focus(topic)
    return {"id": f"t3_{user.rng.randrange(16**6):06x}", "author": user.id,
            "summary": f"{user.title(focus)}: what I learned",
            "content": user.text(topic, focus, user.sentences(8, 16), True)}


ITEM_MAKERS = {"abstract_generation": abstract_item, "product_review": review_item, "topic_writing": topic_item}


def example_from_item(task_name: str, item: dict, rng: random.Random) -> tuple[str, str]:
    """The task input and target for a held-out item, in the public data's input templates."""
    task = TASKS[task_name]
    if task_name == "abstract_generation":
        keywords = sorted(set(item["abstract"].lower().replace(",", "").replace(".", "").split()) & _domain_words())
        items = " ".join(f"{i}. {kw}" for i, kw in enumerate(keywords[:6], 1))
        return task.input_template.format(title=item["title"], items=items), item["abstract"]
    if task_name == "product_review":
        return task.input_template.format(**item), item["reviewText"]
    return task.input_template.format(summary=item["summary"]), item["content"]


def _domain_words() -> set[str]:
    return {w for words in DOMAINS.values() for w in words}


def profile_size(rng: random.Random, position: int, large: int) -> int:
    """Mostly 5-40 items; the first user of a split has none and the second a very large profile."""
    return {0: 0, 1: large}.get(position, rng.randint(5, 40))


def public_rows(task_name: str, setting: str, sizes: dict[str, int], seed: int, large: int = 300):
    """Rows per source split ('train', 'val', 'test') for one public config."""
    rng = random.Random(f"{seed}-{task_name}-{setting}")
    make_item, column = ITEM_MAKERS[task_name], TASKS[task_name].user_column
    splits: dict[str, list[dict]] = {}
    if setting == "user":  # cold start: every split has its own users
        offset = 0
        for split, n in sizes.items():
            rows = []
            for position in range(n):
                user = User(rng, offset + position)
                profile = [make_item(user, 1990 + i % 35) for i in range(profile_size(rng, position, large))]
                task_input, output = example_from_item(task_name, make_item(user, 2025), rng)
                rows.append({column: user.id, "input": task_input, "output": output, "profile": profile})
            splits[split] = rows
            offset += n
        return splits
    # temporal: the same users everywhere; each user's latest items are the targets
    users = [User(rng, i) for i in range(max(sizes.values()))]
    for split_index, (split, n) in enumerate(sizes.items()):
        rows = []
        for position, user in enumerate(users[:n]):
            history = profile_size(rng, position, large) + 3
            items = [make_item(user, 1990 + i * 30 // history) for i in range(history)]
            target = items[len(items) - 3 + split_index]
            task_input, output = example_from_item(task_name, target, rng)
            rows.append({column: user.id, "input": task_input, "output": output,
                         "profile": items[: len(items) - 3 + split_index]})
        splits[split] = rows
    return splits


def write_parquet(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


# --- the Avocado email task -----------------------------------------------------------------------------


def rfc822_message(user: User, message_id: str, rng: random.Random) -> tuple[str, str, str]:
    """An Avocado-like message; returns (file text, subject as mail-parser reads it, body)."""
    topic = user.topic()
    focus = user.focus(topic)
    subject = f"{user.title(focus)} — {rng.choice(['follow-up', 'minutes', 'question', 'draft'])}"
    folded = rng.random() < 0.3  # a long subject folded over two lines keeps its line break in mail-parser
    header_subject = subject + " for the\r\n weekly review" if folded else subject
    text = user.text(topic, focus, user.sentences(5, 10)).replace(". ", ".\r\n", 2)
    body = f"Hi all,\r\n\r\n{text}\r\n\r\n-- \r\n{user.id}\r\n"
    date = email.utils.format_datetime(datetime(2001, 1 + rng.randrange(12), 1 + rng.randrange(28),
                                                tzinfo=timezone.utc))
    headers = (f"Message-ID: <{message_id}@avocado.example>\r\nDate: {date}\r\nFrom: {user.id}@avocado.example\r\n"
               f"To: team@avocado.example\r\nSubject: {header_subject}\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\n")
    return headers + body, subject, body


def write_avocado(output: Path, sizes: dict[str, int], seed: int) -> None:
    """Question files for both settings plus one zip archive of the referenced messages."""
    rng = random.Random(f"{seed}-email")
    messages: dict[str, str] = {}

    def new_message(user: User) -> str:
        message_id = f"{len(messages):03d}-{rng.randrange(10**6):06d}-EM"
        messages[message_id] = rfc822_message(user, message_id, rng)[0]
        return message_id

    counter = 0
    for setting in ("user", "temporal"):
        users = [User(rng, 100 + i + (0 if setting == "temporal" else 50)) for i in range(sum(sizes.values()))]
        offset = 0
        for split, n in sizes.items():
            chosen = users[offset: offset + n] if setting == "user" else users[:n]
            questions = []
            for position, user in enumerate(chosen):
                profile = [{"id": f"e{counter}-{j}", "text": new_message(user)}
                           for j in range(profile_size(rng, position, 60))]
                question = {"id": f"email-{setting}-{split}-{counter}", "input": new_message(user),
                            "profile": profile, "content_length": rng.randint(8, 30)}
                if setting == "temporal":
                    question["user_id"] = user.id
                questions.append(question)
                counter += 1
            path = output / "avocado" / setting / f"{split}_questions.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(questions, indent=1, ensure_ascii=False, allow_nan=False))
            offset += n if setting == "user" else 0
    archive = output / "avocado" / "text" / "001.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for message_id, text in messages.items():
            zf.writestr(f"001/{message_id}", text.encode("utf-8"))


SAMPLE_CARD = """\
# LongLaMP synthetic sample

**Synthetic data**, generated by `scripts/make_sample.py` (seed {seed}). No row comes from the real LongLaMP
benchmark, whose data cannot be redistributed here. The files follow the exact public layout so that every code
path of the toolkit runs on them:

- `<config>/<split>-00000-of-00001.parquet` for the six public configs, with the source's split names
  (`train`, `val`, `test`) and columns (user column, `input`, `output`, `profile`);
- `avocado/text/001.zip`: RFC 822 messages named by message id, as in the Avocado collection;
- `avocado/{{user,temporal}}/{{train,dev,test}}_questions.json`: the benchmark's question files for the email task.

Each synthetic user writes about three topics with their own habits and, on each topic, their own stock phrases;
every text, and the task input made from it, is about one topic, so a user's own profile predicts their texts and
the profile items that share the query's topic predict them best (on ROUGE-1, ROUGE-L and METEOR alike). The
first user of each split has an empty profile and the second a very large one.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "sample")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = {"train": 12, "val": 5, "test": 5}
    staging = args.output.with_name(args.output.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    for task_name in ITEM_MAKERS:
        for setting in ("user", "temporal"):
            for split, rows in public_rows(task_name, setting, sizes, args.seed).items():
                write_parquet(rows, staging / f"{task_name}_{setting}" / f"{split}-00000-of-00001.parquet")
    write_avocado(staging, {"train": 8, "dev": 4, "test": 4}, args.seed)
    (staging / "README.md").write_text(SAMPLE_CARD.format(seed=args.seed))
    replace_folder(staging, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
