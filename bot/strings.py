"""Every user-visible string the engine produces, per language.

Adapters and profiles ask for a string by key and language; a missing translation falls
back to English. Profiles can override `fallback`, `offer_human` and `greeting` (see
bot/profiles.py). Keep messages short, polite and free of internal detail: users never
see exception text.
"""
from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "fallback": {
        "en": "I'm sorry, I couldn't find that in our help center.",
        "fr": "Désolé, je n'ai pas trouvé cette information dans notre centre d'aide.",
        "zh": "抱歉，我在帮助中心里没有找到相关信息。",
        "de": "Entschuldigung, dazu habe ich in unserem Hilfe-Center nichts gefunden.",
        "es": "Lo siento, no encontré esa información en nuestro centro de ayuda.",
    },
    "offer_human": {
        "en": "Would you like to talk to a person from our team?",
        "fr": "Voulez-vous parler à une personne de notre équipe ?",
        "zh": "需要为您转接人工客服吗？",
        "de": "Möchten Sie mit einer Person aus unserem Team sprechen?",
        "es": "¿Quiere hablar con una persona de nuestro equipo?",
    },
    "talk_to_human": {
        "en": "Talk to a human", "fr": "Parler à un humain", "zh": "转人工客服",
        "de": "Mit einem Menschen sprechen", "es": "Hablar con una persona",
    },
    "handoff_requested": {
        "en": "I've asked a member of our team to take over. They'll reply here as soon as they can.",
        "fr": "J'ai demandé à un membre de notre équipe de prendre le relais. Il vous répondra ici dès que possible.",
        "zh": "我已请团队成员接手，他们会尽快在这里回复您。",
        "de": "Ich habe ein Teammitglied gebeten, zu übernehmen. Sie erhalten hier so bald wie möglich eine Antwort.",
        "es": "He pedido a un miembro de nuestro equipo que continúe. Le responderá aquí lo antes posible.",
    },
    # "Talk to a human" where no agents channel takes handoffs (no desk connected to the profile)
    "handoff_unavailable": {
        "en": "No one from our team is connected to this chat right now, so I can't put you through to a person here.",
        "fr": "Aucun membre de notre équipe n'est connecté à ce chat pour le moment : je ne peux donc pas vous mettre "
              "en relation avec une personne ici.",
        "zh": "目前没有团队成员接入此对话，我无法在这里为您转接人工客服。",
        "de": "Gerade ist niemand aus unserem Team mit diesem Chat verbunden, daher kann ich Sie hier nicht an eine "
              "Person weiterleiten.",
        "es": "Ahora mismo no hay nadie de nuestro equipo conectado a este chat, así que no puedo pasarle con una "
              "persona aquí.",
    },
    "handoff_contact": {
        "en": "You can reach our team at {contact}. Meanwhile, I'm happy to keep answering your questions.",
        "fr": "Vous pouvez joindre notre équipe : {contact}. En attendant, je reste à votre disposition pour répondre "
              "à vos questions.",
        "zh": "您可以通过 {contact} 联系我们的团队。在此期间，我可以继续回答您的问题。",
        "de": "Sie erreichen unser Team unter {contact}. Bis dahin beantworte ich gern weiter Ihre Fragen.",
        "es": "Puede contactar con nuestro equipo en {contact}. Mientras tanto, con gusto sigo respondiendo a sus "
              "preguntas.",
    },
    "handoff_no_contact": {
        "en": "I'm happy to keep answering your questions.",
        "fr": "Je reste à votre disposition pour répondre à vos questions.",
        "zh": "我可以继续回答您的问题。",
        "de": "Ich beantworte gern weiter Ihre Fragen.",
        "es": "Con gusto sigo respondiendo a sus preguntas.",
    },
    "empty_message": {
        "en": "Your message is empty. What would you like to know?",
        "fr": "Votre message est vide. Que souhaitez-vous savoir ?",
        "zh": "您的消息是空的。请问您想了解什么？",
    },
    "too_long": {
        "en": "Your message is too long ({length} characters; the limit is {limit}). Please shorten it.",
        "fr": "Votre message est trop long ({length} caractères ; la limite est de {limit}). Merci de le raccourcir.",
        "zh": "您的消息太长（{length} 个字符，上限为 {limit}）。请缩短后再发送。",
    },
    "error": {
        "en": "Sorry, something went wrong on our side and I couldn't answer. You can try again or talk to a person.",
        "fr": "Désolé, un problème technique m'a empêché de répondre. Vous pouvez réessayer ou parler à une personne.",
        "zh": "抱歉，系统出现问题，暂时无法回答。您可以重试或联系人工客服。",
    },
    "busy": {
        "en": "I'm still answering your previous message; please wait a moment and send this again.",
        "fr": "Je réponds encore à votre message précédent ; merci de patienter un instant puis de renvoyer celui-ci.",
        "zh": "我还在回复您的上一条消息，请稍等片刻后再发送。",
    },
    "feedback_thanks": {
        "en": "Thanks for your feedback!", "fr": "Merci pour votre retour !", "zh": "感谢您的反馈！",
    },
    "sources": {"en": "Sources", "fr": "Sources", "zh": "来源"},
    "updated": {"en": "updated {date}", "fr": "mis à jour le {date}", "zh": "更新于 {date}"},
    "only_text": {
        "en": "Sorry, I can only read text messages for now. Please type your question.",
        "fr": "Désolé, je ne sais lire que les messages texte pour l'instant. Merci d'écrire votre question.",
        "zh": "抱歉，我目前只能阅读文字消息。请用文字输入您的问题。",
    },
    "help": {
        "en": "Ask me a question in your own words and I'll answer from our help center, with sources.\n"
              "/human: talk to a person\n/reset: start a new conversation",
        "fr": "Posez-moi une question avec vos mots : je réponds à partir de notre centre d'aide, sources à l'appui.\n"
              "/human : parler à une personne\n/reset : recommencer la conversation",
        "zh": "请直接用文字提问，我会根据帮助中心的内容回答并附上来源。\n/human：转人工客服\n/reset：开始新的对话",
    },
    "forgotten": {
        "en": "Done: I've forgotten our conversation. What would you like to know?",
        "fr": "C'est fait : j'ai oublié notre conversation. Que souhaitez-vous savoir ?",
        "zh": "好的，我已清除之前的对话。请问您想了解什么？",
    },
    "share_with_channel": {"en": "Share with the channel", "fr": "Partager avec le canal", "zh": "分享到频道"},
    "shared_by": {"en": "Shared by {user}", "fr": "Partagé par {user}", "zh": "由 {user} 分享"},
    "share_failed": {
        "en": "I couldn't post in this channel: please invite me to it first.",
        "fr": "Je ne peux pas publier dans ce canal : invitez-moi d'abord.",
        "zh": "我无法在此频道发帖：请先邀请我加入。",
    },
    "queue_position": {
        "en": "You are number {position} in the queue.", "fr": "Vous êtes numéro {position} dans la file d'attente.",
        "zh": "您当前排在第 {position} 位。",
    },
    "handoff_closed": {
        "en": "Our team is available {hours} ({timezone}). They'll reply here when they're back.",
        "fr": "Notre équipe est disponible {hours} ({timezone}). Elle vous répondra ici à son retour.",
        "zh": "我们的团队服务时间为 {hours}（{timezone}）。他们回来后会在这里回复您。",
    },
    "still_waiting": {
        "en": "Thanks, I've passed this on: a person from our team will be with you shortly.",
        "fr": "Merci, c'est transmis : une personne de notre équipe va vous répondre sous peu.",
        "zh": "谢谢，已为您转达：我们的团队成员很快会回复您。",
    },
    "agent_joined": {
        "en": "{agent} from our team has joined the conversation.",
        "fr": "{agent}, de notre équipe, a rejoint la conversation.",
        "zh": "我们的团队成员 {agent} 已加入对话。",
    },
    "agent_says": {"en": "**{agent}**: {text}", "fr": "**{agent}** : {text}", "zh": "**{agent}**：{text}"},
    "handoff_unclaimed": {
        "en": "Our team is busier than usual and hasn't picked up your conversation yet. Keep writing here: "
              "we'll reply as soon as we can.",
        "fr": "Notre équipe est plus occupée que d'habitude et n'a pas encore pris votre conversation. "
              "Continuez à écrire ici : nous vous répondrons dès que possible.",
        "zh": "我们的团队目前比平时繁忙，尚未接手您的对话。请继续在这里留言，我们会尽快回复。",
    },
    "closing": {
        "en": "{agent} has marked this conversation as resolved. Thank you for contacting us!",
        "fr": "{agent} a indiqué que cette conversation est résolue. Merci de nous avoir contactés !",
        "zh": "{agent} 已将此对话标记为已解决。感谢您的联系！",
    },
    "rate_question": {
        "en": "How would you rate the help you got? (1 = poor, 5 = excellent)",
        "fr": "Comment évaluez-vous l'aide reçue ? (1 = mauvaise, 5 = excellente)",
        "zh": "您对本次服务的评价是？（1 = 很差，5 = 很好）",
    },
    "rated": {"en": "Thank you for your rating!", "fr": "Merci pour votre note !", "zh": "感谢您的评分！"},
    "back_to_bot": {
        "en": "You're back with the assistant. Ask me anything, or ask for a person again at any time.",
        "fr": "Vous êtes de retour avec l'assistant. Posez-moi vos questions, ou redemandez une personne à tout moment.",
        "zh": "您已回到智能助手。请随时提问，也可以随时再次要求人工客服。",
    },
    # the agents' side (Slack agents channel), in the profile's language
    "desk_title": {"en": "{customer} needs a human", "fr": "{customer} a besoin d'un humain"},
    "desk_waiting": {"en": "Waiting for an agent", "fr": "En attente d'un agent"},
    "desk_claimed": {"en": "Claimed by {agent}", "fr": "Pris en charge par {agent}"},
    "desk_resolved": {"en": "Resolved by {agent}", "fr": "Résolu par {agent}"},
    "desk_returned": {"en": "Returned to the bot by {agent}", "fr": "Rendu au bot par {agent}"},
    "claim": {"en": "Claim", "fr": "Prendre"},
    "resolve": {"en": "Resolve", "fr": "Résoudre"},
    "return_to_bot": {"en": "Return to bot", "fr": "Rendre au bot"},
    "unclaim": {"en": "Unclaim", "fr": "Libérer"},
    "claimed_by_other": {"en": "{agent} already has this conversation.", "fr": "{agent} a déjà cette conversation."},
    "claim_first": {
        "en": "Claim this conversation before replying: your message was not sent to the customer.",
        "fr": "Prenez cette conversation avant de répondre : votre message n'a pas été envoyé au client.",
    },
    "not_open": {
        "en": "This conversation is no longer open ({state}); nothing was changed.",
        "fr": "Cette conversation n'est plus ouverte ({state}) ; rien n'a été modifié.",
    },
    "customer_unreachable": {
        "en": "Not delivered: the customer can no longer be reached on {channel} (they may have blocked the bot).",
        "fr": "Non remis : le client n'est plus joignable sur {channel} (il a peut-être bloqué le bot).",
    },
    "relay_failed": {
        "en": "Not delivered: your message did not reach the customer on {channel} ({channel} kept failing). "
              "Please send it again later.",
        "fr": "Non remis : votre message n'a pas atteint le client sur {channel} ({channel} ne répondait pas). "
              "Merci de le renvoyer plus tard.",
    },
    "relay_refused": {
        "en": "Not delivered: {channel} refused your message to the customer. Please rephrase it, or shorten it, "
              "and send it again.",
        "fr": "Non remis : {channel} a refusé votre message au client. Merci de le reformuler ou de le raccourcir, "
              "puis de le renvoyer.",
    },
    "desk_reminder": {
        "en": "A conversation has been waiting for an agent for more than {minutes} min.",
        "fr": "Une conversation attend un agent depuis plus de {minutes} min.",
    },
    "expired": {
        "en": "This answer is no longer available. Please ask again.",
        "fr": "Cette réponse n'est plus disponible. Merci de reposer la question.",
        "zh": "此回答已失效，请重新提问。",
    },
    "greeting": {
        "en": "Hello! Ask me anything about our store: delivery, returns, warranty, invoices…",
        "fr": "Bonjour ! Posez-moi vos questions sur notre boutique : livraison, retours, garantie, factures…",
        "zh": "您好！关于配送、退货、保修、发票等问题，都可以问我。",
    },
    # -- moderation (bot/moderation.py): what the user reads when a turn is stopped ------------
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
    # -- small talk (bot/smalltalk.py) and answers quoted from another language ------------
    "smalltalk_presence": {
        "en": "Yes, I'm here! What can I help you with?",
        "fr": "Oui, je suis là ! Que puis-je faire pour vous ?",
        "zh": "在的！请问有什么可以帮您？",
        "de": "Ja, ich bin da! Wobei kann ich helfen?",
        "es": "¡Sí, aquí estoy! ¿En qué puedo ayudarle?",
    },
    "smalltalk_thanks": {
        "en": "You're welcome! Anything else I can help with?",
        "fr": "Avec plaisir ! Puis-je vous aider pour autre chose ?",
        "zh": "不客气！还有什么可以帮您的吗？",
        "de": "Gern geschehen! Kann ich sonst noch helfen?",
        "es": "¡De nada! ¿Puedo ayudarle en algo más?",
    },
    "smalltalk_goodbye": {
        "en": "Goodbye, and have a nice day!",
        "fr": "Au revoir, et bonne journée !",
        "zh": "再见，祝您愉快！",
        "de": "Auf Wiedersehen und einen schönen Tag!",
        "es": "¡Adiós y que tenga un buen día!",
    },
    "smalltalk_ack": {
        "en": "All right. Ask me anything else whenever you like.",
        "fr": "Très bien. N'hésitez pas si vous avez une autre question.",
        "zh": "好的。如果还有其他问题，随时问我。",
        "de": "Alles klar. Fragen Sie jederzeit gern weiter.",
        "es": "De acuerdo. Pregúnteme lo que quiera cuando lo desee.",
    },
    "quoted_from": {
        "en": "This answer comes from our help center in {language}:",
        "fr": "Cette réponse provient de notre centre d'aide en {language} :",
        "zh": "以下答案来自我们的{language}帮助中心：",
        "de": "Diese Antwort stammt aus unserem Hilfe-Center auf {language}:",
        "es": "Esta respuesta procede de nuestro centro de ayuda en {language}:",
    },
    "language_en": {"en": "English", "fr": "anglais", "zh": "英文", "de": "Englisch", "es": "inglés"},
    "language_fr": {"en": "French", "fr": "français", "zh": "法文", "de": "Französisch", "es": "francés"},
    "language_zh": {"en": "Chinese", "fr": "chinois", "zh": "中文", "de": "Chinesisch", "es": "chino"},
    "language_de": {"en": "German", "fr": "allemand", "zh": "德文", "de": "Deutsch", "es": "alemán"},
    "language_es": {"en": "Spanish", "fr": "espagnol", "zh": "西班牙文", "de": "Spanisch", "es": "español"},
    # -- tools (bot/acting.py): consent buttons and what happens after -------------------
    "confirm_yes": {"en": "Yes", "fr": "Oui", "zh": "是", "de": "Ja", "es": "Sí"},
    "confirm_no": {"en": "No", "fr": "Non", "zh": "否", "de": "Nein", "es": "No"},
    "tool_declined": {
        "en": "OK, I won't do that.",
        "fr": "D'accord, je ne le ferai pas.",
        "zh": "好的，我不会执行该操作。",
    },
    "tool_done": {
        "en": "Done.",
        "fr": "C'est fait.",
        "zh": "已完成。",
    },
    "tool_not_pending": {
        "en": "That request was already handled or has expired.",
        "fr": "Cette demande a déjà été traitée ou a expiré.",
        "zh": "该请求已处理或已过期。",
    },
    "tool_failed": {
        "en": "Sorry, I couldn't complete that action: the system I use for it isn't responding. "
              "You can try again later or talk to a person.",
        "fr": "Désolé, je n'ai pas pu effectuer cette action : le système que j'utilise ne répond pas. "
              "Vous pouvez réessayer plus tard ou parler à une personne.",
        "zh": "抱歉，无法完成该操作：相关系统暂时没有响应。您可以稍后重试或联系人工客服。",
    },
    "tool_gave_up": {
        "en": "Sorry, I couldn't finish that request. A person from our team can help.",
        "fr": "Désolé, je n'ai pas pu aller au bout de cette demande. Une personne de notre équipe peut vous aider.",
        "zh": "抱歉，我无法完成该请求。我们的人工客服可以帮助您。",
    },
    # -- tool safety (bot/tools/consent.py, bot/tools/limits.py): consent questions rendered from
    # the validated arguments (each value shortened, escaped, links defanged), what an action did,
    # and the daily limits of actions
    "confirm_create_ticket": {
        "en": "Create this support ticket? The conversation so far is attached.\n"
              "Summary: {summary}\nPriority: {priority}\nDescription: {description}",
        "fr": "Créer ce ticket de support ? La conversation jusqu'ici y est jointe.\n"
              "Résumé : {summary}\nPriorité : {priority}\nDescription : {description}",
        "zh": "要创建此支持工单吗？将附上目前的对话。\n摘要：{summary}\n优先级：{priority}\n描述：{description}",
        "de": "Dieses Support-Ticket erstellen? Der bisherige Chat wird angehängt.\n"
              "Zusammenfassung: {summary}\nPriorität: {priority}\nBeschreibung: {description}",
        "es": "¿Crear este ticket de soporte? Se adjunta la conversación hasta ahora.\n"
              "Resumen: {summary}\nPrioridad: {priority}\nDescripción: {description}",
    },
    "confirm_add_comment": {
        "en": "Add this comment to ticket {ticket}?\nComment: {comment}",
        "fr": "Ajouter ce commentaire au ticket {ticket} ?\nCommentaire : {comment}",
        "zh": "要在工单 {ticket} 中添加这条评论吗？\n评论：{comment}",
        "de": "Diesen Kommentar zum Ticket {ticket} hinzufügen?\nKommentar: {comment}",
        "es": "¿Añadir este comentario al ticket {ticket}?\nComentario: {comment}",
    },
    "done_create_ticket": {
        "en": "Ticket {key} created: {summary}",
        "fr": "Ticket {key} créé : {summary}",
        "zh": "已创建工单 {key}：{summary}",
        "de": "Ticket {key} erstellt: {summary}",
        "es": "Ticket {key} creado: {summary}",
    },
    "done_add_comment": {
        "en": "Comment added to ticket {ticket}.",
        "fr": "Commentaire ajouté au ticket {ticket}.",
        "zh": "已在工单 {ticket} 中添加评论。",
        "de": "Kommentar zum Ticket {ticket} hinzugefügt.",
        "es": "Comentario añadido al ticket {ticket}.",
    },
    "tool_limit_per_conversation": {
        "en": "I can't do that again in this conversation today: the limit for this action is reached. "
              "A person from our team can help.",
        "fr": "Je ne peux plus faire cela dans cette conversation aujourd'hui : la limite pour cette action est "
              "atteinte. Une personne de notre équipe peut vous aider.",
        "zh": "今天在此对话中无法再执行该操作：已达到该操作的次数上限。我们的人工客服可以帮助您。",
        "de": "Das kann ich in diesem Chat heute nicht noch einmal tun: Das Limit für diese Aktion ist erreicht. "
              "Eine Person aus unserem Team kann helfen.",
        "es": "Hoy ya no puedo volver a hacer eso en esta conversación: se alcanzó el límite de esta acción. "
              "Una persona de nuestro equipo puede ayudarle.",
    },
    "tool_limit_per_user_per_day": {
        "en": "I can't do that for you again today: the daily limit for this action is reached. "
              "A person from our team can help.",
        "fr": "Je ne peux plus faire cela pour vous aujourd'hui : la limite quotidienne pour cette action est "
              "atteinte. Une personne de notre équipe peut vous aider.",
        "zh": "今天无法再为您执行该操作：已达到该操作的每日上限。我们的人工客服可以帮助您。",
        "de": "Das kann ich heute nicht noch einmal für Sie tun: Das Tageslimit für diese Aktion ist erreicht. "
              "Eine Person aus unserem Team kann helfen.",
        "es": "Hoy ya no puedo volver a hacer eso por usted: se alcanzó el límite diario de esta acción. "
              "Una persona de nuestro equipo puede ayudarle.",
    },
}


def text(key: str, language: str, /, **values: object) -> str:
    """The string `key` in `language` (English when untranslated), formatted with `values`."""
    table = STRINGS[key]
    template = table.get(language) or table.get(language.split("-")[0]) or table["en"]
    return template.format(**values) if values else template
