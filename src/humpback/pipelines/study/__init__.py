"""The curated-vs-random study: does curation make a better model than a random pick?"""
