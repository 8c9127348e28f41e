using System.Text;

namespace Sluice.TestKit;

/// <summary>Random inputs for the codec tests, reproducible from the caller's seeded <see cref="Random"/>.</summary>
public static class RandomData
{
    private const string Alphabet = "abcXYZ._-é→";

    /// <summary>0 to <paramref name="maxLength"/> random bytes.</summary>
    public static byte[] Bytes(Random random, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(random);
        var bytes = new byte[maxLength <= 0 ? 0 : random.Next(maxLength + 1)];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>Empty a third of the time, else 1 to 11 characters, some of them two or three bytes in UTF-8.</summary>
    public static string Text(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var length = random.Next(3) == 0 ? 0 : random.Next(1, 12);
        var builder = new StringBuilder(length);
        for (var i = 0; i < length; i++)
        {
            builder.Append(Alphabet[random.Next(Alphabet.Length)]);
        }

        return builder.ToString();
    }
}
