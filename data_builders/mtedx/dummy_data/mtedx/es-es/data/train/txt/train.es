hola a todos.

gracias por venir
no hay audio
