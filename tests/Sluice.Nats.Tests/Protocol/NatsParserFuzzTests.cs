using Sluice.Nats.Protocol;

namespace Sluice.Nats.Tests.Protocol;

public class NatsParserFuzzTests
{
    private const int Inputs = 1_000_000;

    [Fact]
    public void A_million_random_and_mutated_inputs_never_crash_or_hang_the_parser()
    {
        var random = new Random(20240601);
        var parser = new NatsParser(maxControlLine: 1024, maxPayload: 4096);
        var corpus = Enumerable.Range(0, 64).Select(i => ServerStream.Generate(new Random(i), 1 + (i % 6)).Bytes).ToArray();
        var outcomes = new int[3];
        for (var i = 0; i < Inputs; i++)
        {
            byte[] input;
            if (i % 2 == 0)
            {
                input = new byte[random.Next(0, 48)];
                random.NextBytes(input);
                if (input.Length > 4 && random.Next(2) == 0)
                {
                    // Give random bytes a plausible op prefix so they get past the first token.
                    "MSG "u8.CopyTo(input);
                }
            }
            else
            {
                input = Mutations.Apply(random, corpus[random.Next(corpus.Length)], 1 + random.Next(4));
            }

            try
            {
                var (ops, error) = ParserRun.Run(parser, input);
                outcomes[error ? 2 : ops > 0 ? 1 : 0]++;
            }
            catch (Exception ex)
            {
                Assert.Fail($"Input #{i} crashed the parser ({ex.GetType().Name}: {ex.Message}); add it as a regression test: {Convert.ToHexString(input)}");
            }
        }

        // Both kinds of inputs must actually reach the interesting outcomes, or the fuzzer tests nothing.
        Assert.All(outcomes, count => Assert.True(count > 1000, $"outcomes {string.Join(",", outcomes)}"));
    }
}
