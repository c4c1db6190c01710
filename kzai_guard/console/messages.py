# ruff: noqa: RUF001  (Kazakh and Russian words are Cyrillic on purpose)
"""The console's words in Kazakh, Russian and English, and how a request picks its language."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "MESSAGES", "pick_language", "translator"]

LANGUAGES = ("kk", "ru", "en")
DEFAULT_LANGUAGE = "kk"
"""Kazakh, the state language, when the request asks for none of the three."""

MESSAGES: dict[str, tuple[str, str, str]] = {
    # key: (kk, ru, en)
    "console": ("Адамның тексеруі", "Проверка человеком", "Human review"),
    "queue": ("Кезек", "Очередь", "Queue"),
    "signed_in_as": ("Кірген қызметкер", "Вы вошли как", "Signed in as"),
    "ticket": ("Өтінім", "Заявка", "Ticket"),
    "policy": ("Шешім түрі", "Тип решения", "Decision type"),
    "reason": ("Себеп", "Причина", "Reason"),
    "reason:objection": ("Адам қарсылық білдірді", "Человек возразил", "The person objected"),
    "reason:vulnerable-subject": (
        "Адам осал топқа жатады",
        "Человек относится к уязвимой группе",
        "The person is vulnerable",
    ),
    "reason:human-required": (
        "Шешімді адам қабылдауы керек",
        "Решение должен принять человек",
        "A human must decide",
    ),
    "reason:disparity": (
        "Шешімдердің нәтижелері топтар арасында тым өзгеше",
        "Итоги решений слишком различаются между группами",
        "Outcomes differ too much between groups",
    ),
    "reason:no-legal-basis": (
        "Автоматты шешімге негіз жоқ",
        "Нет основания для автоматического решения",
        "No basis for an automated decision",
    ),
    "status": ("Күйі", "Статус", "Status"),
    "deadline": ("Мерзімі", "Срок", "Deadline"),
    "opened": ("Ашылды", "Открыта", "Opened"),
    "overdue": ("Мерзімі өтті", "Срок истёк", "Overdue"),
    "claimed_by": ("Қарап жатқан", "Взял в работу", "Claimed by"),
    "until": ("дейін", "до", "until"),
    "nobody": ("ешкім", "никто", "nobody"),
    "open": ("Ашық", "Открыта", "Open"),
    "completed": ("Шешілді", "Решена", "Decided"),
    "all": ("Барлығы", "Все", "All"),
    "filter": ("Сүзгі", "Фильтр", "Filter"),
    "only_overdue": ("Тек мерзімі өткендер", "Только просроченные", "Only overdue"),
    "any": ("кез келген", "любой", "any"),
    "show": ("Көрсету", "Показать", "Show"),
    "empty_queue": ("Кезек бос.", "Очередь пуста.", "The queue is empty."),
    "pages": ("Беттер", "Страницы", "Pages"),
    "next_page": ("Келесі бет", "Следующая страница", "Next page"),
    "previous_page": ("Алдыңғы бет", "Предыдущая страница", "Previous page"),
    "open_case": ("Ашу", "Открыть", "Open"),
    "case": ("Іс", "Дело", "Case"),
    "decision_id": ("Шешім нөмірі", "Номер решения", "Decision id"),
    "subject": ("Адам", "Субъект", "Person"),
    "pseudonym": ("бүркеншік ат", "псевдоним", "pseudonym"),
    "autonomy": ("Дербестік деңгейі", "Уровень автономности", "Autonomy"),
    "significance": ("Маңыздылығы", "Значимость", "Significance"),
    "model": ("Модель", "Модель", "Model"),
    "explanation": ("Түсіндірме", "Объяснение", "Explanation"),
    "no_explanation": (
        "Жүйе шешім қабылдамады: түсіндірме жоқ.",
        "Система не принимала решения: объяснения нет.",
        "The system made no decision here: there is no explanation.",
    ),
    "factors": ("Негізгі факторлар", "Ключевые факторы", "Key factors"),
    "data_basis": ("Шешімнің деректері", "Данные, на которых основано решение", "Data basis"),
    "withheld": ("Жасырылған", "Скрыто", "Withheld"),
    "not_reported": ("Берілмеген", "Не передано", "Not reported"),
    "claim": ("Жұмысқа алу", "Взять в работу", "Claim"),
    "release": ("Кезекке қайтару", "Вернуть в очередь", "Release"),
    "decide": ("Шешім", "Решение", "Decide"),
    "outcome": ("Нәтиже", "Итог", "Outcome"),
    "approved": ("Мақұлданды", "Одобрено", "Approved"),
    "rejected": ("Қабылданбады", "Отклонено", "Rejected"),
    "amended": ("Өзгертілді", "Изменено", "Amended"),
    "reason_for_person": (
        "Адамға арналған себеп",
        "Причина для человека",
        "Reason given to the person",
    ),
    "record_decision": ("Шешімді жазу", "Записать решение", "Record the decision"),
    "escalate": ("Жоғары беру", "Передать выше", "Escalate"),
    "escalation_reason": ("Неге жоғары беріледі", "Почему передаётся выше", "Why escalate"),
    "escalated_by": ("Жоғары берген", "Передал выше", "Escalated by"),
    "claimed_by_other": (
        "Бұл өтінімді басқа қызметкер қарап жатыр.",
        "Эту заявку рассматривает другой сотрудник.",
        "Another reviewer is working on this ticket.",
    ),
    "claimed_by_you": (
        "Сіз бұл өтінімді қарап жатырсыз",
        "Вы рассматриваете эту заявку",
        "You hold this ticket",
    ),
    "decided_by": ("Шешім қабылдаған", "Решение принял", "Decided by"),
    "find_decision": ("Шешімді табу", "Найти решение", "Find a decision"),
    "decision": ("Автоматты шешім", "Автоматическое решение", "Automated decision"),
    "override": ("Шешімді түзету не болдырмау", "Исправить или отменить решение", "Override"),
    "action": ("Әрекет", "Действие", "Action"),
    "correct": ("Түзету", "Исправить", "Correct"),
    "cancel": ("Болдырмау", "Отменить", "Cancel"),
    "record_override": ("Жазу", "Записать", "Record"),
    "overrides": ("Адамның түзетулері", "Исправления человеком", "Human overrides"),
    "not_overridable": (
        "Бұл шешім түрі жоғары дербестікті: оны түзетуге болмайды.",
        "Этот тип решений полностью автономен: его нельзя исправить или отменить.",
        "This decision type has high autonomy: its decisions cannot be overridden.",
    ),
    "back": ("Артқа", "Назад", "Back"),
    "error": ("Қате", "Ошибка", "Error"),
    "language": ("Тіл", "Язык", "Language"),
    "reviewer-required": (
        "Тексерушілер жұмысы үшін жүйеге кіріңіз.",
        "Войдите, чтобы работать с проверками.",
        "Sign in to work on human reviews.",
    ),
    "reviewer-forbidden": (
        "Сіздің тіркелгіңізге шешімдерді тексеруге рұқсат жоқ.",
        "Вашей учётной записи не разрешено проверять решения.",
        "Your account is not allowed to review decisions.",
    ),
    "claim-conflict": (
        "Бұл өтінімді басқа қызметкер қарап жатыр.",
        "Эту заявку уже рассматривает другой сотрудник.",
        "Another reviewer holds this ticket.",
    ),
    "claim-required": (
        "Алдымен өтінімді жұмысқа алыңыз.",
        "Сначала возьмите заявку в работу.",
        "Claim the ticket first.",
    ),
    "review-closed": (
        "Бұл өтінім бойынша шешім қабылданған.",
        "По этой заявке решение уже принято.",
        "This ticket is already decided.",
    ),
    "override-forbidden": (
        "Бұл шешім түрін түзетуге болмайды.",
        "Решения этого типа нельзя исправить или отменить.",
        "Decisions of this type cannot be overridden.",
    ),
    "csrf-failed": (
        "Форма ескірген. Бетті жаңартып, қайталап көріңіз.",
        "Форма устарела. Обновите страницу и повторите.",
        "The form has expired. Reload the page and try again.",
    ),
    "not-found": ("Мұндай жазба жоқ.", "Такой записи нет.", "There is no such record."),
    "bad-request": ("Сұрау дұрыс емес.", "Неверный запрос.", "The request is not valid."),
}
"""Every word of the console: key -> (Kazakh, Russian, English)."""


def pick_language(query_lang: str | None, accept_language: str | None) -> str:
    """``?lang=`` when it names one of :data:`LANGUAGES`, else the best of Accept-Language."""
    if query_lang in LANGUAGES:
        return query_lang
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def translator(lang: str) -> Callable[[str], str]:
    """``t(key)``: the word in ``lang``; for a key the table lacks, the key after its last
    ``:`` (``reason:objection`` -> ``objection``), so that a new code still shows."""
    column = LANGUAGES.index(lang)

    def t(key: str) -> str:
        words = MESSAGES.get(key)
        return key.rpartition(":")[2] if words is None else words[column]

    return t
