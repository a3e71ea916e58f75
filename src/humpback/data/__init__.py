"""Data rules the stages share: oasst1 trees, record loading, funnels, text measures, language
identification and deduplication. Method helpers: safe to edit, each with its tests."""
