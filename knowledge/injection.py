"""Instructions addressed to an AI inside documents (OWASP LLM01, indirect prompt injection).

A help center talks to customers ("tell the carrier…", "do not reply to this email"); a
planted instruction talks to the model answering them ("ignore previous instructions",
"note for AI assistants", "in your response, …", fake "System:" turns, `<INFORMATION>`
blocks, "print your system prompt", "use the tool `…`"). Each sentence, table cell and
list item is scored by a set of weighted cue patterns in English, French and Chinese; a
unit whose cues add up to `THRESHOLD` is an instruction. Some cues open a region (a fake
dialogue turn, a `[system](#context)` marker, a `-- CORE INSTRUCTION` header): the rest of
their paragraph goes with them, since what follows is the injected turn.

`scan` returns the text without those units and what it found (rule and snippet), so the
document can be indexed clean and flagged for a person to review. No sentence of the
bundled sample knowledge is flagged (tests/knowledge/test_sanitize.py checks it;
bench/security.py counts false flags on two public FAQ corpora).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

THRESHOLD = 1.0
SNIPPET = 200
I = re.I | re.M
GAP = r"(?:[^.!?\n]|\.(?=\S))"  # within one sentence: a dot inside "www.x.example" doesn't end it


@dataclass(frozen=True)
class Rule:
    """A cue: all its patterns must match one unit; `opens` rules take the paragraph's rest."""

    name: str
    weight: float
    patterns: tuple[re.Pattern, ...]
    opens: bool = False

    def matches(self, text: str) -> bool:
        return all(p.search(text) for p in self.patterns)


def _rule(name: str, weight: float, *patterns: str, opens: bool = False) -> Rule:
    return Rule(name, weight, tuple(re.compile(p, I) for p in patterns), opens)


AI = (r"(?:ai|a\.i\.|llms?|language models?|assistants?|chat ?bots?|bots?|agents?|models?|gpt|chatgpt|claude"
      r"|copilot|switchboard|ia|assistants? (?:ia|virtuels?)|modèles?|人工智能|语言模型|智能助手|助手|机器人|模型)")
ROLE = r"(?:system|assistant|user|human|ai|système|systeme|utilisateur|humain|系统|助手|用户|人类)"
INSTRUCTIONS = (r"(?:instructions?|directions?|prompts?|rules?|guidelines?|context|data|text|messages?|commands?"
                r"|consignes?|directives?|règles?|données|indications?)")
RULES: tuple[Rule, ...] = (
    # -- changing the rules -----------------------------------------------------------------
    _rule("ignore_instructions", 1.0,
          rf"\b(?:ignore|disregard|forget|override|bypass|ignorez?|oublie[zs]?|ne tiens pas compte)\b[^.!?\n]{{0,60}}\b{INSTRUCTIONS}\b",
          r"\b(?:previous|prior|above|earlier|preceding|following|all|any|rest|other|your|these|précédente?s?"
          r"|ci-dessus|antérieure?s?|toute?s?|tes|le reste|suivante?s?)\b"),
    _rule("ignore_instructions", 1.0, r"(?:忽略|无视|忘记|忘掉|不要理会|别管)[^。！？\n]{0,16}(?:指令|指示|说明|规则|提示|要求|问题|内容)"),
    _rule("ignore_instructions", 1.0, r"\bignore (?:the|this|my|the user's|their|his|her) (?:question|request|query)\b"
          r"|\bignore (?:la|cette|ma) (?:question|demande)\b|忽略(?:这个|用户的)?问题"),
    _rule("print_this", 0.6, r"\b(?:reply|respond|answer) only with\b|\bréponds uniquement\b|只(?:回答|回复)"),
    _rule("responder", 0.5, r"\band nothing else\b|\bet rien d'autre\b|\b(?:when|before|after|once) you (?:answer|respond|reply)\b"
          r"|\bquand tu (?:réponds|répondras)\b|(?:当你|你在)(?:回答|回复)(?:时|的时候)"),
    _rule("new_rules", 1.0, r"\b(?:new|updated|real|true) (?:system )?(?:instructions|rules)\b\s*[:：]|\bnouvelles? (?:instructions|consignes)\s*:"
          r"|新(?:的)?(?:指令|规则)[:：]"),
    _rule("persona_change", 0.6, r"\byou are now\b|\bfrom now on\b|\bhenceforth\b|\bà partir de maintenant\b|\bdésormais,? tu\b"
          r"|\btu es maintenant\b|从现在(?:开始|起)|你现在是"),
    _rule("persona_change", 1.0, r"\b(?:you are now|act as|pretend (?:to be|you are)|tu es maintenant) (?:an? )?(?:dan|unrestricted|jailbroken"
          r"|evil|different (?:ai|assistant))\b|\b(?:developer|god|dan) mode\b|\bjailbreak\b"
          r"|\b(?:ai|assistant|bot|model) without (?:any )?(?:restrictions|rules|limits)\b"
          r"|\b(?:ia|assistant) sans (?:aucune )?(?:restriction|règle|limite)s?\b"
          r"|(?:没有|不受|无)(?:任何)?(?:限制|约束|规则)的(?:AI|人工智能|机器人|助手|模型)"),
    # -- addressing the model ---------------------------------------------------------------
    _rule("addresses_ai", 1.0, rf"\b(?:note|message|instructions?|reminder|notice|memo|todo|attention)\s+(?:for|to)\s+(?:all\s+)?(?:the\s+)?"
          rf"(?:ai\s+)?{AI}\b(?!\s+(?:staff|team))"),
    _rule("addresses_ai", 1.0, rf"\b(?:note|message|consignes?|instructions?|remarque)\s+(?:pour|à|aux|destinée?s? aux?|à l'attention des?)\s+"
          rf"(?:les\s+|l')?{AI}\b"),
    _rule("addresses_ai", 1.0, rf"\b(?:to|for) you,?\s+(?:switchboard|assistant|ai|chatgpt|claude|gpt|bot|model)\b|\bpour toi,?\s+\w+"
          rf"|\b(?:dear|hey|hi|attention)\s+(?:ai|assistant|chatbot|bot|model|llm)\b|\bif you are an? {AI}\b"
          rf"|\bsi tu es une? {AI}\b|\b{AI}s?,\s+(?:you must|please|ignore|always|never)\b"),
    _rule("addresses_ai", 1.0, r"(?:致|给|对)(?:所有|各位)?\s*(?:AI|ai|人工智能|语言模型|智能助手|AI助手|聊天机器人|助手)(?:的)?(?:说明|提示|注意|指令|消息|留言|：|:)"
          r"|如果你是(?:AI|ai|人工智能|语言模型|助手|机器人)"),
    _rule("addresses_ai", 0.5, r"\byou,\s+the (?:assistant|ai|model)\b|\bdear (?:reader|assistant)\b|\btu\b.{0,40}\bintelligence artificielle\b"),
    _rule("the_task", 1.0, r"\bthe task (?:that )?i gave you\b|\byour (?:original|initial|current) task\b|\bla (?:tâche|demande) (?:que je t'ai|initiale)\b"
          r"|\bma demande initiale\b|我(?:一开始|最初)?(?:给你|交给你)的任务"),
    # -- the response itself ----------------------------------------------------------------
    _rule("your_response", 0.6, r"\b(?:in|into|to|at the (?:start|top|beginning|end) of)\s+your\s+(?:responses?|repl(?:y|ies)|answers?|outputs?)\b"
          r"|\b(?:dans|au début de|à la fin de)\s+ta\s+réponse\b|在(?:你的)?(?:回答|回复|答复)(?:中|里|开头|结尾|末尾)"),
    _rule("your_response", 0.3, r"\b(?:dans|au début de|à la fin de)\s+votre\s+réponse\b"),
    _rule("rewrite_response", 1.0, rf"\b(?:modify|change|alter|rewrite|encode|format|translate|begin|start|end|prefix|sign|write)\s+"
          r"(?:your|every|each|all(?: of)? your)\s+(?:responses?|repl(?:y|ies)|answers?|outputs?|messages?)\b"
          rf"|\b(?:add|include|insert|append|put)\b{GAP}{{0,90}}\b(?:to|in|into|at the end of)\s+your\s+(?:repl(?:y|ies)|responses?|answers?|outputs?)\b"
          r"|\breply to (?:every|each|all) messages?\b|\b(?:answer|respond|reply) (?:only )?in \w+ only\b"
          r"|\b(?:modifie|change|réécris|encode|commence|termine|traduis)\s+(?:ta|chaque|toutes? tes)\s+réponses?\b"
          r"|你的(?:回答|回复)(?:都|只)(?:用|以)|(?:修改|改写|编码|翻译)(?:你的)?(?:回答|回复)|(?:每个|每条|所有)(?:回答|回复)(?:都)?(?:以|用|开头|前)"),
    _rule("dont_answer", 1.0, r"\b(?:do not|don't|never) (?:answer|respond to|reply to|address) (?:the|this|their|any|the user's|the customer's) "
          r"(?:question|user|customer|request)s?\b|\bne réponds pas\b|\bn'y réponds pas\b|不要回答|别回答|不要回复"),
    _rule("before_answering", 0.7, r"\bbefore (?:you )?(?:answer(?:ing)?|respond(?:ing)?|repl(?:y|ying)|solv(?:e|ing))\b"
          r"|\bavant de (?:répondre|traiter|résoudre)\b|在(?:你)?(?:回答|回复)(?:之前|前)|回答之前"),
    _rule("print_this", 0.5, r"\b(?:print|say|write|output|repeat|respond with|reply with|reply only with|answer with)\b\s*[:：]?\s*[\"'«“<]"
          r"|\b(?:print|output) the following\b|\b(?:écris|affiche|répète|réponds(?: uniquement)?)\b\s*[:：]?\s*[\"'«“<]"
          r"|(?:输出|打印|说|回复|重复)[:：]?\s*[“\"「<]|\bspell[- ]check\b|\bcorrige\b[^.!?\n]{0,20}\borthographe\b"),
    _rule("to_the_user", 0.5, r"\b(?:provide|give|tell|say|send|show)\s+(?:it|this|that|the following)(?:\s+\w+)?\s+to the (?:user|customer)s?\b"
          r"|\bfocus only on the following\b|\bconcentre-toi\b|\btransmets-la\b|\bsuggest (?:users|customers|the user)\b"
          r"|\bsuggère aux\b|\btell (?:customers|users|the user)\b|\bindique au client\b|告诉(?:用户|客户)"),
    _rule("imperative_tu", 0.4, r"\b(?:fais|crée|ouvre|écris|affiche|recopie|transfère|utilise|ajoute|réponds|indique|suggère|respecte|traduis"
          r"|répète|corrige)\b[^.!?\n]{0,60}|\b(?:tu dois|tu pourras|peux-tu)\b"),
    # -- revealing the prompt ---------------------------------------------------------------
    _rule("reveal_prompt", 1.0, r"\b(?:print|repeat|reveal|show|output|display|write|spell[- ]check|translate|recite|copy|give me|tell me|share|leak"
          r"|list)\b[^.!?\n]{0,40}(?:\bsystem (?:prompt|message)\b|\b(?:above|previous|prior|preceding|initial|original|hidden|secret"
          r"|internal) (?:instructions|prompt|rules|directions)\b|\byour (?:\w+ ){0,2}(?:instructions|prompt|rules)\b)"),
    _rule("reveal_prompt", 1.0, r"\b(?:affiche|répète|recopie|révèle|montre|écris|imprime|traduis|corrige|donne)\b[^.!?\n]{0,60}"
          r"(?:\bprompt système\b|\binstructions (?:précédentes|cachées|initiales|système)\b|\btes (?:consignes|instructions|règles)\b)"),
    _rule("reveal_prompt", 1.0, r"(?:输出|打印|重复|显示|透露|告诉我|复述|翻译|泄露)[^。！？\n]{0,12}(?:系统提示|提示词|你的(?:指令|指示|规则|设定)|(?:之前|以上|上面)的(?:指令|指示))"),
    _rule("system_prompt", 0.6, r"\bsystem prompt\b|\bprompt système\b|系统提示词?|\bhidden instructions\b|\binstructions cachées\b"),
    # -- acting: tools, tickets, transfers, links --------------------------------------------
    _rule("tool_request", 1.0, r"\b(?:use|call|invoke)\s+(?:the\s+)?`\w+`|\b(?:tool|function|outil)\s+`\w+`|`\w+`\s+(?:tool|function)\b"
          r"|(?:使用|调用)\s*`\w+`|\b[a-z]+(?:_[a-z]+)+\s+(?:tool|function)\b"),
    _rule("tool_request", 0.6, r"\b(?:use|call|invoke)\s+(?:the\s+)?(?:\w+\s+)?(?:tool|function)\b|\bwith the (?:\w+ )?(?:tool|function)\b"
          r"|\butilise[rz]? l'outil\b|(?:使用|调用)\w{0,6}(?:工具|函数)"),
    _rule("tool_request", 0.4, r"\b(?:create|open|file|raise|submit|crée|ouvre)\b[^.!?\n]{0,25}\b(?:jira|it|support)?\s*tickets?\b"
          r"|(?:创建|新建|提交|开)(?:一个)?\s*(?:Jira|IT)?\s*(?:工单|票)"),
    _rule("tool_request", 0.7, r"\btransfer (?:this|the) conversation\b|\bhand (?:this|the) conversation (?:off|over)\b"
          r"|\btransfère (?:immédiatement )?la conversation\b|(?:立即)?(?:把|将)(?:这个|此)?(?:对话|会话)转(?:接|给)"),
    _rule("tool_request", 0.4, r"\blook ?up\b[^.!?\n]{0,20}\border\s+#?\w*\d|\bgrant(?:ing)? (?:\w+ )?(?:admin|administrator)\b"
          r"|\bdroits administrateur\b|管理员权限"),
    _rule("exfiltration", 1.0, r"!\[[^\]]*\]\([^)\s]*(?:\[[A-Z_]+\]|\{[^}]*\}|\$\w+)"),
    _rule("exfiltration", 0.5, r"\b(?:url|base64)[- ]encoded\b|\bencodé en base64\b|\b(?:summary of|résumé de) (?:this|our|the|cette|notre) conversation\b"
          r"|\b(?:this|our) conversation\b|\b(?:cette|notre) conversation\b|(?:本次|这次|我们的)(?:对话|会话)"),
    _rule("secrets", 0.4, r"\b(?:card number|cvv|cvc|passwords? or secrets|bank details|coordonnées bancaires|numéro de carte"
          r"|mots? de passe ou des secrets)\b|银行卡号|密码"),
    _rule("urgency", 0.3, r"!!!|\bstrictly adhere\b|\brespecte strictement\b|\bthe following instruction\b|\bspread the rumou?r\b"),
    # -- fake turns and markers (they open a region: the rest of the paragraph) --------------
    _rule("role_marker", 1.0, r"\[(?:system|assistant|user)\]\(#[\w-]*\)|#{2,}\s*\(?(?:system|system_message|assistant)\b"
          r"|<\|?(?:im_start|im_end|endoftext)\|?>|<\s*(?:end of session|fin de session|会话结束)\s*>|\[/?(?:INST|SYS)\]|<</?SYS>>",
          opens=True),
    _rule("role_marker", 1.0, r"^\W{0,3}-{2,}\s*[A-Z ]*\b(?:CORE |MAIN |NEW |SYSTEM )?(?:INSTRUCTIONS?|PROMPT|OVERRIDE)\b|^\s*-{2,}\s*核心指令",
          opens=True),
    _rule("role_turn", 0.6, rf"^\W{{0,4}}\**{ROLE}\**\s*[:：]", opens=True),
)
PSEUDO_TAG = re.compile(r"<\s*(information|system|assistant|user|instructions?|important|admin|sys|prompt)\s*>"
                        r"(.*?)(?:<\s*/\s*\1\s*>|\Z)", re.I | re.S)
ROLE_START = re.compile(rf"^\W{{0,4}}\**({ROLE})\**\s*[:：]", re.I)
SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")
TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")


@dataclass(frozen=True)
class Finding:
    """One instruction found: which rule(s) fired and the text, cut to `SNIPPET` characters."""

    rule: str
    snippet: str


@dataclass(frozen=True)
class Scan:
    """A text without its instructions, and what was removed."""

    text: str
    findings: tuple[Finding, ...]


def score(unit: str) -> tuple[float, list[Rule]]:
    """The unit's cue weight (each rule name counts once, at its highest weight) and the rules."""
    fired = [r for r in RULES if r.matches(unit)]
    best: dict[str, float] = {}
    for r in fired:
        best[r.name] = max(best.get(r.name, 0.0), r.weight)
    return sum(best.values()), fired


def finding(unit: str) -> Finding | None:
    """A Finding when `unit` (a sentence, cell, hidden text…) is an instruction to an AI."""
    total, fired = score(unit)
    if total < THRESHOLD:
        return None
    return Finding("+".join(dict.fromkeys(r.name for r in fired)), _snippet(unit))


def addresses_ai(text: str) -> Finding | None:
    """The first instruction in a longer text (hidden content, a folded section), or None."""
    found = scan(text).findings
    return found[0] if found else None


def scan(text: str) -> Scan:
    """`text` without the instructions it holds, and what they were."""
    findings: list[Finding] = []

    def tag_block(match: re.Match) -> str:
        findings.append(Finding(f"pseudo_tag:{match.group(1).lower()}", _snippet(match.group(0))))
        return ""
    text = PSEUDO_TAG.sub(tag_block, text)
    out: list[str] = []
    for n, part in enumerate(re.split(r"(\n[ \t]*\n)", text)):
        out.append(part if n % 2 or not part.strip() else _paragraph(part, findings))  # odd parts: separators
    return Scan(re.sub(r"\n{3,}", "\n\n", "".join(out)), tuple(findings))


def _paragraph(paragraph: str, findings: list[Finding]) -> str:
    lines = paragraph.split("\n")
    roles = {m.group(1).lower() for line in lines if (m := ROLE_START.match(line))}
    dialogue = len(roles) >= 2  # "Assistant: … / User: …": a scripted exchange, not a label
    kept: list[str] = []
    for n, line in enumerate(lines):
        if dialogue and ROLE_START.match(line) or _opens(line):
            findings.append(Finding(_opener_rule(line, dialogue), _snippet("\n".join(lines[n:]))))
            break
        kept.append(_line(line, findings))
    return "\n".join(k for k in kept if k is not None)


def _opens(line: str) -> bool:
    total, fired = score(line)
    return total >= THRESHOLD and any(r.opens for r in fired)


def _opener_rule(line: str, dialogue: bool) -> str:
    _, fired = score(line)
    names = [r.name for r in fired] or []
    return "+".join(dict.fromkeys((["dialogue"] if dialogue else []) + names)) or "dialogue"


def _line(line: str, findings: list[Finding]) -> str | None:
    """The line without its instruction units; None when nothing of it is left."""
    if TABLE_ROW.match(line):
        cells = line.strip().strip("|").split("|")
        hit = [f for c in cells if (f := finding(c.strip()))]
        if hit:  # a row carrying an instruction is no knowledge: drop it whole
            findings.extend(hit)
            return None
        return line
    units = [u for u in SENTENCE.split(line)]
    kept = []
    for unit in units:
        found = finding(unit)
        if found:
            findings.append(found)
        else:
            kept.append(unit)
    if len(kept) == len(units):
        return line
    rest = " ".join(u.strip() for u in kept if u.strip())
    return rest if _has_words(rest) else None


def _has_words(text: str) -> bool:
    return bool(re.search(r"[^\W\d_]{2,}|[\u4e00-\u9fff]", text))


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET else text[:SNIPPET - 1] + "…"
