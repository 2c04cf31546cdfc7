"""Writes MyAnimeList list exports as MAL writes them (every field of the real format), for tests
and benchmarks."""

from __future__ import annotations

import gzip
from pathlib import Path

STATUS_NAMES = {1: "Watching", 2: "Completed", 3: "On-Hold", 4: "Dropped", 6: "Plan to Watch"}

_ENTRY = """\t<anime>
\t\t<series_animedb_id>{anime_id}</series_animedb_id>
\t\t<series_title><![CDATA[{title}]]></series_title>
\t\t<series_type>TV</series_type>
\t\t<series_episodes>12</series_episodes>
\t\t<my_id>0</my_id>
\t\t<my_watched_episodes>{watched}</my_watched_episodes>
\t\t<my_start_date>0000-00-00</my_start_date>
\t\t<my_finish_date>{finish}</my_finish_date>
\t\t<my_rated></my_rated>
\t\t<my_score>{score}</my_score>
\t\t<my_storage></my_storage>
\t\t<my_storage_value>0.00</my_storage_value>
\t\t<my_status>{status}</my_status>
\t\t<my_comments><![CDATA[]]></my_comments>
\t\t<my_times_watched>0</my_times_watched>
\t\t<my_rewatch_value></my_rewatch_value>
\t\t<my_priority>LOW</my_priority>
\t\t<my_tags><![CDATA[]]></my_tags>
\t\t<my_rewatching>0</my_rewatching>
\t\t<my_rewatching_ep>0</my_rewatching_ep>
\t\t<my_discuss>1</my_discuss>
\t\t<my_sns>default</my_sns>
\t\t<update_on_import>0</update_on_import>
\t</anime>
"""


def export_xml(entries: list[tuple[int, str, int, int]], *, export_type: int = 1, user: str = "tester") -> str:
    """The XML of a list export; ``entries``: (anime id, title, score 0-10, status code)."""
    counts = {code: sum(1 for e in entries if e[3] == code) for code in STATUS_NAMES}
    head = (f'<?xml version="1.0" encoding="UTF-8" ?>\n<!--\n Created by XML Export feature at MyAnimeList.net\n'
            f' Version 1.1.0\n-->\n\n<myanimelist>\n\n\t<myinfo>\n\t\t<user_id>1234567</user_id>\n'
            f'\t\t<user_name>{user}</user_name>\n\t\t<user_export_type>{export_type}</user_export_type>\n'
            f'\t\t<user_total_anime>{len(entries)}</user_total_anime>\n'
            f'\t\t<user_total_watching>{counts[1]}</user_total_watching>\n'
            f'\t\t<user_total_completed>{counts[2]}</user_total_completed>\n'
            f'\t\t<user_total_onhold>{counts[3]}</user_total_onhold>\n'
            f'\t\t<user_total_dropped>{counts[4]}</user_total_dropped>\n'
            f'\t\t<user_total_plantowatch>{counts[6]}</user_total_plantowatch>\n\t</myinfo>\n\n')
    body = "".join(_ENTRY.format(anime_id=a, title=t, score=s, status=STATUS_NAMES[st],
                                 watched=12 if st == 2 else 3 if st in (1, 3, 4) else 0,
                                 finish="2016-05-01" if st == 2 else "0000-00-00") for a, t, s, st in entries)
    return head + body + "\n</myanimelist>\n"


def write_export(path: Path, entries, **kwargs) -> Path:
    """Write the export to ``path``, gzipped when its name ends in ``.gz`` (as MAL sends it)."""
    data = export_xml(entries, **kwargs).encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path
