"""Operations read-outs: metrics, the summary, lineage, alert payloads, incidents and the page's views."""
