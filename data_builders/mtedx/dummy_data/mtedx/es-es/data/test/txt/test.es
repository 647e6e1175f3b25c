¿Qué tal?
