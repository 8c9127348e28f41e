Console.Error.WriteLine("sluice: no commands yet");
return 2;
