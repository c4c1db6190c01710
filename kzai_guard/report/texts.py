# ruff: noqa: RUF001
"""The report's words in Kazakh, Russian and English."""

from __future__ import annotations

from kzai_guard.core.vocabulary import Language

__all__ = ["TEXTS", "text"]

TEXTS: dict[str, dict[Language, str]] = {
    "title": {
        Language.KK: "ЖИ шешімдерінің сәйкестік есебі",
        Language.RU: "Отчёт о соответствии решений ИИ",
        Language.EN: "AI decisions compliance report",
    },
    "period": {Language.KK: "Кезең", Language.RU: "Период", Language.EN: "Period"},
    "inventory": {
        Language.KK: "Шешім түрлерінің тізімі",
        Language.RU: "Перечень типов решений",
        Language.EN: "Inventory of decision types",
    },
    "policy": {Language.KK: "Шешім түрі", Language.RU: "Тип решения", Language.EN: "Decision type"},
    "significance": {
        Language.KK: "Маңыздылығы",
        Language.RU: "Значимость",
        Language.EN: "Significance",
    },
    "autonomy": {Language.KK: "Дербестігі", Language.RU: "Автономность", Language.EN: "Autonomy"},
    "risk": {Language.KK: "Тәуекел класы", Language.RU: "Класс риска", Language.EN: "Risk class"},
    "model": {Language.KK: "Модель", Language.RU: "Модель", Language.EN: "Model"},
    "basis": {Language.KK: "Негіз", Language.RU: "Основание", Language.EN: "Basis"},
    "mode": {Language.KK: "Режим", Language.RU: "Режим", Language.EN: "Mode"},
    "risk_review": {
        Language.KK: "Тәуекелді соңғы қарау",
        Language.RU: "Последний пересмотр рисков",
        Language.EN: "Last risk review",
    },
    "decisions": {Language.KK: "Шешімдер", Language.RU: "Решения", Language.EN: "Decisions"},
    "decisions_by_day": {
        Language.KK: "Күн сайынғы шешімдер",
        Language.RU: "Решения по дням",
        Language.EN: "Decisions per day",
    },
    "verdict": {Language.KK: "Қорытынды", Language.RU: "Вердикт", Language.EN: "Verdict"},
    "reason": {Language.KK: "Себебі", Language.RU: "Причина", Language.EN: "Reason"},
    "count": {Language.KK: "Саны", Language.RU: "Количество", Language.EN: "Count"},
    "people": {
        Language.KK: "Қарсылықтар, қараулар, түсіндірмелер",
        Language.RU: "Возражения, пересмотры, объяснения",
        Language.EN: "Objections, reviews, explanations",
    },
    "objections": {
        Language.KK: "Тіркелген қарсылықтар",
        Language.RU: "Зарегистрировано возражений",
        Language.EN: "Objections recorded",
    },
    "objections_withdrawn": {
        Language.KK: "Қайтарып алынған қарсылықтар",
        Language.RU: "Отозвано возражений",
        Language.EN: "Objections withdrawn",
    },
    "reviews_opened": {
        Language.KK: "Ашылған қараулар",
        Language.RU: "Открыто пересмотров",
        Language.EN: "Reviews opened",
    },
    "reviews_met": {
        Language.KK: "Мерзімінде",
        Language.RU: "В срок",
        Language.EN: "Deadline met",
    },
    "reviews_missed": {
        Language.KK: "Мерзімі өткен",
        Language.RU: "Срок нарушен",
        Language.EN: "Deadline missed",
    },
    "reviews_pending": {
        Language.KK: "Күтуде",
        Language.RU: "В работе",
        Language.EN: "Pending",
    },
    "explanations": {
        Language.KK: "Берілген түсіндірмелер",
        Language.RU: "Выдано объяснений",
        Language.EN: "Explanations delivered",
    },
    "withheld": {
        Language.KK: "Ұсталған шешімдер",
        Language.RU: "Задержано решений",
        Language.EN: "Decisions withheld",
    },
    "disparity": {
        Language.KK: "Топтар бойынша айырмашылық (ҚР ЖИ 6-бап)",
        Language.RU: "Различия по группам (ст. 6 Закона об ИИ)",
        Language.EN: "Disparity by group (KZ-AI 6)",
    },
    "ground": {Language.KK: "Негіз", Language.RU: "Признак", Language.EN: "Ground"},
    "group": {Language.KK: "Топ", Language.RU: "Группа", Language.EN: "Group"},
    "rate": {
        Language.KK: "Қолайлы нәтиже үлесі (95 % аралық)",
        Language.RU: "Доля благоприятных (95 % интервал)",
        Language.EN: "Selection rate (95 % interval)",
    },
    "ratio": {Language.KK: "Қатынас", Language.RU: "Отношение", Language.EN: "Ratio"},
    "flagged": {Language.KK: "Белгіленген", Language.RU: "Отмечено", Language.EN: "Flagged"},
    "no_monitoring": {
        Language.KK: "Бақыланатын шешім түрі жоқ.",
        Language.RU: "Нет типов решений под мониторингом.",
        Language.EN: "No decision type is monitored.",
    },
    "alerts": {
        Language.KK: "Айырмашылық ескертулері",
        Language.RU: "Сигналы о различиях",
        Language.EN: "Disparity alerts",
    },
    "routings": {
        Language.KK: "Шешімдер адамға жіберілді",
        Language.RU: "Решения переданы людям",
        Language.EN: "Decisions routed to humans",
    },
    "integrity": {
        Language.KK: "Журналдың тұтастығы",
        Language.RU: "Целостность журнала",
        Language.EN: "Integrity of the trail",
    },
    "verified": {
        Language.KK: "Тексерілді: тізбек пен қолтаңбалар дұрыс",
        Language.RU: "Проверено: цепочка и подписи верны",
        Language.EN: "Verified: chain and signatures hold",
    },
    "broken": {
        Language.KK: "ТЕКСЕРУ СӘТСІЗ",
        Language.RU: "ПРОВЕРКА НЕ ПРОЙДЕНА",
        Language.EN: "VERIFICATION FAILED",
    },
    "records": {Language.KK: "Жазбалар", Language.RU: "Записей", Language.EN: "Records"},
    "checkpoints": {
        Language.KK: "Қол қойылған бақылау нүктелері",
        Language.RU: "Подписанных контрольных точек",
        Language.EN: "Signed checkpoints",
    },
    "witnesses": {
        Language.KK: "Куәгерлер қол қойған бақылау нүктелері",
        Language.RU: "Контрольные точки, подписанные свидетелями",
        Language.EN: "Checkpoints cosigned by witnesses",
    },
    "witness": {Language.KK: "Куәгер", Language.RU: "Свидетель", Language.EN: "Witness"},
    "cosigned_size": {
        Language.KK: "Соңғы қол қойылған өлшем",
        Language.RU: "Последний подписанный размер",
        Language.EN: "Newest cosigned size",
    },
    "cosigned_at": {
        Language.KK: "Қол қойылған уақыты (UTC)",
        Language.RU: "Подписано (UTC)",
        Language.EN: "Cosigned at (UTC)",
    },
    "behind": {
        Language.KK: "Журнал алда (жазба)",
        Language.RU: "Журнал впереди (записей)",
        Language.EN: "Log ahead by (records)",
    },
    "checked": {
        Language.KK: "Кілтпен тексерілді",
        Language.RU: "Проверено ключом",
        Language.EN: "Checked with its key",
    },
    "not_checked": {
        Language.KK: "кілт берілмеген",
        Language.RU: "ключ не задан",
        Language.EN: "no key given",
    },
    "quorum": {
        Language.KK: "Кворум жеткен ең соңғы өлшем",
        Language.RU: "Последний размер с кворумом свидетелей",
        Language.EN: "Newest size with the witness quorum",
    },
    "no_quorum": {
        Language.KK: "кворум жоқ",
        Language.RU: "кворума нет",
        Language.EN: "no quorum",
    },
    "no_witnesses": {
        Language.KK: "Бірде-бір куәгер бақылау нүктесіне қол қоймаған.",
        Language.RU: "Ни один свидетель не подписал контрольную точку.",
        Language.EN: "No witness has cosigned a checkpoint.",
    },
    "findings": {Language.KK: "Анықталғандар", Language.RU: "Замечания", Language.EN: "Findings"},
    "article": {Language.KK: "Бап", Language.RU: "Статья", Language.EN: "Article"},
    "no_findings": {
        Language.KK: "Ескерту жоқ.",
        Language.RU: "Замечаний нет.",
        Language.EN: "No findings.",
    },
    "transfers": {
        Language.KK: "Деректерді беру орындары",
        Language.RU: "Места передачи данных",
        Language.EN: "Where the data goes",
    },
    "destination": {Language.KK: "Бағыт", Language.RU: "Получатель", Language.EN: "Destination"},
    "country": {Language.KK: "Ел", Language.RU: "Страна", Language.EN: "Country"},
    "generated": {
        Language.KK: "Жасалған уақыты",
        Language.RU: "Сформирован",
        Language.EN: "Generated",
    },
}
"""Every label, by key and language."""


def text(key: str, language: Language) -> str:
    """The label ``key`` in ``language``."""
    return TEXTS[key][language]
