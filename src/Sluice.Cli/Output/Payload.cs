using System.Text;

namespace Sluice.Cli.Output;

/// <summary>How message bytes (keys, values, headers) are shown: as text when they are printable UTF-8, else base64.</summary>
internal static class Payload
{
    /// <summary>Marks base64 in text output, so binary data cannot pass for text.</summary>
    public const string Base64Prefix = "base64:";

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The bytes as a string when they are valid UTF-8, else null.</summary>
    public static string? TryDecodeUtf8(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    /// <summary>
    /// For one-line text output: printable UTF-8 as is, anything else (invalid UTF-8, control characters
    /// such as a newline or a tab, which would break the line or the columns) as "base64:...".
    /// </summary>
    public static string ForText(ReadOnlySpan<byte> bytes)
    {
        var text = TryDecodeUtf8(bytes);
        return text is not null && IsPrintable(text) ? text : Base64Prefix + Convert.ToBase64String(bytes);
    }

    public static bool IsPrintable(string text)
    {
        foreach (var rune in text.EnumerateRunes())
        {
            if (Rune.IsControl(rune) || rune.Value == 0xFEFF)
            {
                return false;
            }
        }

        return true;
    }
}
