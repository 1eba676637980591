print("pop")
