"""What the user reads when moderation stops a turn (bot/moderation.py), per language.

To be merged into bot/strings.py (same shape: key → language → text). `safe_message` answers a
flagged message (abuse, threats); `safe_message_self_harm` answers a message showing intent of
suicide or self-injury: kind, and pointing to emergency help without naming one country's
number, since users write from anywhere; `safe_answer_withheld` replaces a generated answer
the output check flagged. Each goes with a "Talk to a human" action. `safe_message_key` says
which key a verdict's category gets.
"""
from __future__ import annotations

SAFETY_STRINGS: dict[str, dict[str, str]] = {
    "safe_message": {
        "en": "I can't help with messages like this one. If you need help with an order, a delivery or "
              "your account, I'm happy to help, or you can talk to a person from our team.",
        "fr": "Je ne peux pas donner suite à ce type de message. Si vous avez besoin d'aide pour une commande, "
              "une livraison ou votre compte, je suis là, ou vous pouvez parler à une personne de notre équipe.",
        "zh": "我无法回应这类消息。如果您在订单、配送或账户方面需要帮助，我很乐意协助，也可以为您转接人工客服。",
        "de": "Auf Nachrichten dieser Art kann ich nicht eingehen. Wenn Sie Hilfe zu einer Bestellung, einer "
              "Lieferung oder Ihrem Konto brauchen, helfe ich gern, oder Sie sprechen mit einer Person aus "
              "unserem Team.",
        "es": "No puedo responder a mensajes como este. Si necesita ayuda con un pedido, una entrega o su "
              "cuenta, estaré encantado de ayudarle, o puede hablar con una persona de nuestro equipo.",
    },
    "safe_message_self_harm": {
        "en": "I'm really sorry you're going through this. You don't have to face it alone. If you might act on "
              "these thoughts or are in danger right now, please call your local emergency number or a suicide "
              "and crisis line in your country, or go to the nearest emergency department. Talking to someone "
              "you trust can help too. I'm only a support assistant, but a person from our team can talk with you.",
        "fr": "Je suis vraiment désolé que vous traversiez cela. Vous n'avez pas à y faire face seul. Si vous "
              "risquez de passer à l'acte ou êtes en danger maintenant, appelez le numéro d'urgence de votre "
              "pays ou une ligne d'écoute et de prévention du suicide, ou rendez-vous aux urgences les plus "
              "proches. En parler à une personne de confiance peut aussi aider. Je ne suis qu'un assistant, "
              "mais une personne de notre équipe peut échanger avec vous.",
        "zh": "听到您正在经历这些，我真的很难过。您不必独自面对。如果您可能会付诸行动，或现在处于危险之中，"
              "请拨打您所在地的紧急电话或当地的心理危机干预热线，或前往最近的急诊。和您信任的人聊一聊也会有帮助。"
              "我只是客服助手，但可以为您转接我们团队的工作人员。",
        "de": "Es tut mir wirklich leid, dass Sie das gerade durchmachen. Sie müssen damit nicht allein sein. "
              "Wenn Sie diesen Gedanken folgen könnten oder jetzt in Gefahr sind, rufen Sie bitte die örtliche "
              "Notrufnummer oder eine Krisen- und Suizidpräventions-Hotline in Ihrem Land an, oder gehen Sie in "
              "die nächste Notaufnahme. Mit einem Menschen Ihres Vertrauens zu sprechen, kann auch helfen. Ich "
              "bin nur ein Support-Assistent, aber eine Person aus unserem Team kann mit Ihnen sprechen.",
        "es": "Siento mucho que esté pasando por esto. No tiene que afrontarlo solo. Si pudiera actuar según "
              "estos pensamientos o está en peligro ahora, llame al número de emergencias de su país o a una "
              "línea de prevención del suicidio y crisis, o acuda al servicio de urgencias más cercano. Hablar "
              "con alguien de confianza también puede ayudar. Solo soy un asistente de soporte, pero una "
              "persona de nuestro equipo puede hablar con usted.",
    },
    "safe_answer_withheld": {
        "en": "I can't share the answer I wrote to this. A person from our team can help you with it.",
        "fr": "Je ne peux pas vous transmettre la réponse que j'ai rédigée. Une personne de notre équipe peut "
              "vous aider.",
        "zh": "我无法提供刚才生成的回答。我们团队的工作人员可以为您提供帮助。",
        "de": "Die Antwort, die ich dazu geschrieben habe, kann ich nicht weitergeben. Eine Person aus unserem "
              "Team kann Ihnen helfen.",
        "es": "No puedo compartir la respuesta que redacté. Una persona de nuestro equipo puede ayudarle.",
    },
}


def safe_message_key(category: str | None, output: bool = False) -> str:
    """The string key for a flagged turn: the self-harm message whenever self-harm is the
    category (even in a generated answer), the withheld-answer one for other flagged output."""
    if category == "self_harm":
        return "safe_message_self_harm"
    return "safe_answer_withheld" if output else "safe_message"
