print("pop-bench")
