print("model code is copied, not filled: ${not_a_placeholder}")
