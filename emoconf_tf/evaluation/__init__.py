"""Evaluating confidence scores: the paper's protocol (`protocol`), selective-classification figures (`selective`),
statistics over runs (`statistics`), the validation-chosen `recommended` score (`recommended`), MC dropout
(`mc_dropout`), deep-ensemble probabilities (`ensemble`), and the report: tables (`tables`), plots (`plots`) and
markdown (`markdown`)."""
