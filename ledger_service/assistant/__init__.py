"""The assistant: understands a consumer's message in Chinese or English and answers from the index.

``dataset`` (the labelled utterances and their split), ``language`` (zh / en / other), ``model`` (the
classifiers) and ``replies`` (the sentences) are pure: no database, no chain. ``conversation`` gathers the
facts an answer needs (the merchant's policy, the consumer's return) through the returns workflow's views.
"""
