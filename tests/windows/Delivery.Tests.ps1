# Pester 5 tests of how salve hands scripts to powershell.exe, run against the real
# powershell.exe of a Windows host. They check, on Windows itself, the rules salve's lab models
# (crates/salve-lab: process.rs, typed_input.rs, codepage.rs): if one fails here, the lab is
# wrong and must be fixed first. Run: Invoke-Pester -Path tests/windows (see README.md there).

BeforeAll {
    $script:Bootstrap = Get-Content -Raw -LiteralPath (Join-Path $PSScriptRoot 'bootstrap.ps1')
    $script:Encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($script:Bootstrap))

    # Start Windows PowerShell 5.1 with ARGS, TEXT on stdin as UTF-8; returns stdout, exit code.
    function Invoke-Exe([string[]] $Arguments, [string] $Text, [Text.Encoding] $OutEncoding) {
        $psi = New-Object Diagnostics.ProcessStartInfo
        $psi.FileName = Join-Path $env:SystemRoot 'System32\WindowsPowerShell\v1.0\powershell.exe'
        $psi.Arguments = $Arguments -join ' '
        $psi.UseShellExecute = $false
        $psi.RedirectStandardInput = $true
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $psi.StandardOutputEncoding = $OutEncoding
        $p = [Diagnostics.Process]::Start($psi)
        $bytes = (New-Object Text.UTF8Encoding $false).GetBytes($Text)
        $p.StandardInput.BaseStream.Write($bytes, 0, $bytes.Length)
        $p.StandardInput.Close()
        $out = $p.StandardOutput.ReadToEnd()
        $null = $p.StandardError.ReadToEnd()
        $p.WaitForExit()
        [pscustomobject]@{ Stdout = $out; ExitCode = $p.ExitCode }
    }

    # About SIZE characters of output lines, then a multi-line try block printing its last line.
    function New-LongScript([int] $Size) {
        $lines = for ($n = 1; ($n * 30) -lt $Size; $n++) { "Write-Output 'filler line {0:d5}'" -f $n }
        ($lines -join "`n") + "`ntry {`n    Write-Output 'the last line'`n    exit 7`n} catch {`n    exit 1`n}`n"
    }
}

Describe 'salve''s bootstrap' {
    It 'runs a 20,000-character script whole and returns its exit code' {
        $r = Invoke-Exe @('-NoProfile', '-NonInteractive', '-EncodedCommand', $Encoded) "& {`n$(New-LongScript 20000)`n}`n" ([Text.Encoding]::UTF8)
        $r.ExitCode | Should -Be 7
        ($r.Stdout.TrimEnd() -split "`r?`n")[-1] | Should -Be 'the last line'
    }

    It 'keeps non-ASCII text both ways' {
        $r = Invoke-Exe @('-NoProfile', '-NonInteractive', '-EncodedCommand', $Encoded) "& {`nWrite-Output 'Größe: Datenbank-Ü €'`n}`n" ([Text.Encoding]::UTF8)
        $r.Stdout.TrimEnd() | Should -Be 'Größe: Datenbank-Ü €'
    }

    It 'runs nothing of a script cut short' {
        $r = Invoke-Exe @('-NoProfile', '-NonInteractive', '-EncodedCommand', $Encoded) "& {`nWrite-Output 'must not appear'`n" ([Text.Encoding]::UTF8)
        $r.Stdout | Should -Not -Match 'must not appear'
        $r.ExitCode | Should -Not -Be 0
    }
}

Describe 'the Windows behaviour the lab models' {
    It '-Command - drops a final multi-line block and exits 0' {
        $r = Invoke-Exe @('-NoProfile', '-NonInteractive', '-Command', '-') (New-LongScript 2000) ([Text.Encoding]::UTF8)
        $r.Stdout | Should -Match 'filler line 00001'
        $r.Stdout | Should -Not -Match 'the last line'
        $r.ExitCode | Should -Be 0
    }

    It 'writes redirected output in the OEM code page unless switched to UTF-8' {
        $oem = [Text.Encoding]::GetEncoding([Globalization.CultureInfo]::CurrentCulture.TextInfo.OEMCodePage)
        $enc = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes("Write-Output 'Größe'"))
        $r = Invoke-Exe @('-NoProfile', '-NonInteractive', '-EncodedCommand', $enc) '' $oem
        $r.Stdout.TrimEnd() | Should -Be 'Größe'
    }
}
