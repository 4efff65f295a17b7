; Outpost - a small run-and-gun NES game that plays like Contra where it matters.
; Part of contra-bc. MIT License. Assemble with ca65, link with ld65 (nrom.cfg).
; One game tick per NMI: one emulator frame is one tick. See docs/cartridge.md.

; ---- hardware ----
PPUCTRL   = $2000
PPUMASK   = $2001
PPUSTATUS = $2002
OAMADDR   = $2003
PPUSCROLL = $2005
PPUADDR   = $2006
PPUDATA   = $2007
OAMDMA    = $4014
JOY1      = $4016

BTN_A     = $80
BTN_B     = $40
BTN_START = $10
BTN_SELECT = $20
BTN_LEFT  = $02
BTN_RIGHT = $01

; ---- RAM at Contra's addresses ----
LVL_ROUTINE   = $2C   ; 00 title, 04 playing, 08 boss destroyed, 09 end of level, 05 init/game over, 0A game-over delay
LEVEL         = $30   ; current level, 0-based
LIVES         = $32   ; spare lives
GAME_OVER     = $38   ; 1 at game over
P2_GAME_OVER  = $39   ; as Contra: 1 when player 2 is game over or not playing (always, one player)
DEMO_MODE     = $1C   ; as Contra: 1 while the attract demo plays
BOSS_DEFEATED = $3B   ; 0 -> 1 when the gate dies
STOP_SCROLL   = $58   ; $FF on the gate screen
SCREEN        = $64   ; screen number within the level
PX            = $65   ; player x within the screen
PSTATE        = $90   ; 0 falling in, 1 normal, 2 dead, 3 can't move
DEATH_FLAG    = $B4   ; bit 0 set on the frame of death
SCORE_LO      = $07E2 ; score / 100, little-endian
SCORE_HI      = $07E3

; ---- our own RAM ----
tmp0       = $00
tmp1       = $01
tmp2       = $02
tmp3       = $03
ptr        = $04      ; 2 bytes
frame      = $10
nmi_done   = $11
pad        = $12
pad_prev   = $13
pad_new    = $14
py_lo      = $15
py         = $16      ; player top y in pixels (192 = standing on ground)
vy_lo      = $17
vy_hi      = $18
jump_hold  = $19      ; frames the current jump's A has been held
jump_rise  = $1A      ; 1 while the held (constant-speed) phase lasts
on_ground  = $1B
fire_cd    = $20      ; $1C is Contra's demo flag
title_idle = $21      ; title frames without START or SELECT; the demo starts at TITLE_WAIT
timer      = $1D
ppu_busy   = $1E
shots      = $1F      ; shots fired (wraps), for tests
layout     = $22      ; LEVEL mod 2: which map
last_screen= $25
death_timer= $26
mask_shadow= $27
oam_i      = $28
old_py     = $29
ETYPE      = $40      ; 4 enemy slots: 0 none, 1 soldier, 2 turret, 3 gate
EX         = $44
EY         = $48
EHP        = $4C
ETMR       = $50      ; turret fire timer
EHIT       = $54      ; frames since last hit (HP refills at REGEN)
BX         = $70      ; 4 player bullets
BY         = $74
BACT       = $78
EBX        = $7C      ; 2 enemy bullets
EBY        = $7E
EBACT      = $80
DIGITS     = $84      ; 5 decimal score digits, most significant first
TERRAIN    = $0300    ; 32 column codes of the current screen

; ---- tuning (frames / pixels) ----
GROUND_Y   = 192      ; player top when standing
MAX_HOLD   = 20       ; A frames that keep the jump rising at 2 px/frame
GRAVITY    = $40      ; 0.25 px/frame^2 (8.8 fixed point)
CEIL_KILL  = 180      ; under a laser ceiling, player top < this dies
MINE_KILL  = 188      ; over a mine, player top > this dies
PIT_DEATH  = 232
BULLET_SPEED = 6
FIRE_CD    = 3        ; earliest next shot 3 frames after a shot
REGEN      = 5        ; HP refills when 5 frames pass without a hit
GATE_HP    = 10
TURRET_HP  = 3
TURRET_PERIOD = 90
DEATH_DELAY = 60
END_DELAY  = 60
GAMEOVER_DELAY = 90
TITLE_WAIT = 240      ; 4 s on the title without START or SELECT starts the attract demo
DEMO_BUTTONS = BTN_RIGHT ; the demo player only runs right, so it dies (soldiers) until game over

.segment "HEADER"
    .byte "NES", $1A, 2, 1, $00, $00, 0, 0, 0, 0, 0, 0, 0, 0

.segment "CODE"

reset:
    sei
    cld
    ldx #$40
    stx $4017
    ldx #$FF
    txs
    inx
    stx PPUCTRL
    stx PPUMASK
    stx $4010
    bit PPUSTATUS
@vb1:
    bit PPUSTATUS
    bpl @vb1
    lda #0
    tax
@clr:
    sta $0000,x
    sta $0100,x
    sta $0300,x
    sta $0400,x
    sta $0500,x
    sta $0600,x
    sta $0700,x
    inx
    bne @clr
    jsr clear_oam
@vb2:
    bit PPUSTATUS
    bpl @vb2
    jsr load_palette
    jsr draw_title
    lda #%00011110
    sta mask_shadow
    lda #%10001000          ; NMI on, sprites from $1000
    sta PPUCTRL

main_loop:
    lda nmi_done
    beq main_loop
    lda #0
    sta nmi_done
    inc frame
    jsr read_pad
    lda DEMO_MODE
    beq @tick
    jsr demo_pad
@tick:
    jsr game_tick
    jsr build_oam
    jmp main_loop

nmi:
    pha
    txa
    pha
    tya
    pha
    lda ppu_busy
    bne @done
    lda #0
    sta OAMADDR
    lda #$02
    sta OAMDMA
    lda LVL_ROUTINE
    beq @nohud
    jsr write_hud
@nohud:
    lda #0
    sta PPUSCROLL
    sta PPUSCROLL
    lda #%10001000
    sta PPUCTRL
    lda mask_shadow
    sta PPUMASK
@done:
    lda #1
    sta nmi_done
    pla
    tay
    pla
    tax
    pla
irq:
    rti

read_pad:
    lda pad
    sta pad_prev
    lda #1
    sta JOY1
    lda #0
    sta JOY1
    ldx #8
@l:
    lda JOY1
    lsr a
    rol pad
    dex
    bne @l
    lda pad_prev
    eor #$FF
    and pad
    sta pad_new
    rts

; attract demo: a real START ends it, otherwise the demo's buttons replace the pad
demo_pad:
    lda pad_new
    and #BTN_START
    beq @buttons
    jmp end_demo
@buttons:
    lda #DEMO_BUTTONS
    sta pad
    lda #0
    sta pad_new
    rts

start_demo:
    lda #1
    sta DEMO_MODE
    lda #0
    sta LEVEL
    jmp new_game

; back to the title (the demo's game over, or START); nothing of the demo game stays flagged
end_demo:
    lda #0
    sta DEMO_MODE
    sta LVL_ROUTINE
    sta LEVEL
    sta title_idle
    sta pad_new
    sta GAME_OVER
    sta BOSS_DEFEATED
    sta PSTATE
    sta DEATH_FLAG
    jsr ppu_off
    jsr draw_title
    jmp ppu_on

; ---------------------------------------------------------------- game flow
game_tick:
    lda LVL_ROUTINE
    bne @not_title
    inc title_idle
    lda pad_new
    and #BTN_SELECT
    beq @start
    lda #0
    sta title_idle
    lda LEVEL                ; SELECT on the title picks the starting level
    eor #1
    sta LEVEL
@start:
    lda pad_new
    and #BTN_START
    beq @idle
    jmp new_game
@idle:
    lda title_idle
    cmp #TITLE_WAIT
    bcc @r
    jmp start_demo
@not_title:
    cmp #$04
    bne @n4
    jmp play_tick
@n4:
    cmp #$08
    bne @n8
    dec timer
    bne @r
    lda #$09
    sta LVL_ROUTINE
    lda #END_DELAY
    sta timer
@r:
    rts
@n8:
    cmp #$09
    bne @n9
    dec timer
    bne @r
    inc LEVEL
    lda #$05
    sta LVL_ROUTINE
    rts
@n9:
    cmp #$0A
    bne @n10
    dec timer
    bne @r
    lda DEMO_MODE
    beq @over
    jmp end_demo
@over:
    lda #$05
    sta LVL_ROUTINE
    jmp draw_game_over
@n10:
    ; $05: level init, or the game-over screen (START starts again)
    lda GAME_OVER
    beq level_init
    lda pad_new
    and #BTN_START
    beq @r
    lda #0
    sta LEVEL
    ; fall through
new_game:
    lda #2
    sta LIVES
    lda #1
    sta P2_GAME_OVER         ; one-player game, as Contra
    lda #0
    sta GAME_OVER
    sta SCORE_LO
    sta SCORE_HI
    ldx #4
@z:
    sta DIGITS,x
    dex
    bpl @z
level_init:
    lda LEVEL
    and #1
    sta layout
    tax
    lda level_len,x
    sta last_screen
    lda #0
    sta SCREEN
    sta BOSS_DEFEATED
    sta STOP_SCROLL
    jsr load_screen
    jsr spawn_player
    lda #$04
    sta LVL_ROUTINE
    rts

spawn_player:
    lda #16
    sta PX
    lda #96
    sta py
    lda #0
    sta py_lo
    sta vy_lo
    sta vy_hi
    sta PSTATE
    sta on_ground
    sta jump_rise
    sta jump_hold
    sta fire_cd
    sta DEATH_FLAG
    rts

; ---------------------------------------------------------------- playing
play_tick:
    ; a dying player finishes dying first, as in Contra: the gate killed on the frame of the
    ; death (a shot already in flight) ends the level only if the player respawns
    lda PSTATE
    cmp #2
    bne @not_dying
    dec death_timer
    bne @r
    lda LIVES
    bne @respawn
    lda #1
    sta GAME_OVER
    lda #0
    sta BOSS_DEFEATED        ; Contra's game-over routine clears $3B too
    lda #$0A
    sta LVL_ROUTINE
    lda #GAMEOVER_DELAY
    sta timer
@r:
    rts
@respawn:
    dec LIVES
    jsr load_screen
    jmp spawn_player
@not_dying:
    lda BOSS_DEFEATED
    beq @live
    lda #$08
    sta LVL_ROUTINE
    lda #$03
    sta PSTATE
    lda #END_DELAY
    sta timer
    rts
@live:
    jsr player_tick
    jsr enemies_tick
    jsr bullets_tick
    jsr ebullets_tick
    lda PSTATE
    cmp #1
    bne @r2
    jsr hazards
    lda PSTATE
    cmp #1
    bne @r2
    lda PX
    cmp #240
    bcc @r2
    lda SCREEN
    cmp last_screen
    bcs @r2
    inc SCREEN
    jsr load_screen
    lda #8
    sta PX
@r2:
    rts

; column code under the player's centre -> A
center_col:
    lda PX
    clc
    adc #4
    lsr a
    lsr a
    lsr a
    tax
    lda TERRAIN,x
    rts

player_tick:
    lda PSTATE
    cmp #1
    bne @physics             ; falling in: no control
    ; horizontal movement (not while below ground level, inside a pit)
    lda py
    cmp #GROUND_Y+1
    bcs @fire
    lda pad
    and #BTN_RIGHT
    beq @left
    jsr max_x
    cmp PX
    beq @left
    bcc @left
    inc PX
@left:
    lda pad
    and #BTN_LEFT
    beq @fire
    lda PX
    cmp #9
    bcc @fire
    dec PX
@fire:
    lda fire_cd
    beq @cd0
    dec fire_cd
@cd0:
    lda pad_new
    and #BTN_B
    beq @jump
    lda fire_cd
    bne @jump
    jsr fire_bullet
@jump:
    lda on_ground
    beq @air
    lda pad_new
    and #BTN_A
    beq @physics
    lda #0
    sta on_ground
    lda #1
    sta jump_rise
    sta jump_hold
    jmp @rise
@air:
    lda jump_rise
    beq @physics
    lda pad
    and #BTN_A
    beq @release
    lda jump_hold
    cmp #MAX_HOLD
    bcs @release
    inc jump_hold
@rise:
    lda #$FE                 ; vy = -2.0 px/frame
    sta vy_hi
    lda #0
    sta vy_lo
    jmp @integrate
@release:
    lda #0
    sta jump_rise
@physics:
    lda on_ground
    bne @integrate
    lda vy_lo
    clc
    adc #GRAVITY
    sta vy_lo
    lda vy_hi
    adc #0
    cmp #4                   ; terminal speed 4 px/frame
    bne @vok
    lda #0
    sta vy_lo
    lda #3
@vok:
    sta vy_hi
@integrate:
    lda py
    sta old_py
    lda on_ground
    bne @walkoff
    lda py_lo
    clc
    adc vy_lo
    sta py_lo
    lda py
    adc vy_hi
    sta py
    ; land when moving down across ground level onto ground
    lda vy_hi
    bmi @done
    lda old_py
    cmp #GROUND_Y+1
    bcs @done
    lda py
    cmp #GROUND_Y
    bcc @done
    jsr center_col
    cmp #' '
    beq @done
    lda #GROUND_Y
    sta py
    lda #0
    sta py_lo
    sta vy_lo
    sta vy_hi
    sta jump_rise
    lda #1
    sta on_ground
    lda PSTATE
    bne @done
    lda #1
    sta PSTATE
@done:
    rts
@walkoff:
    jsr center_col
    cmp #' '
    bne @done
    lda #0
    sta on_ground
    rts

; rightmost x the player may walk to -> A
max_x:
    lda ETYPE
    cmp #3                   ; the gate is always in slot 0
    bne @edge
    lda EX
    sec
    sbc #12
    rts
@edge:
    lda SCREEN
    cmp last_screen
    bcc @open
    lda #232
    rts
@open:
    lda #255
    rts

fire_bullet:
    ldx #0
@find:
    lda BACT,x
    beq @slot
    inx
    cpx #4
    bne @find
    rts
@slot:
    lda #1
    sta BACT,x
    lda PX
    clc
    adc #6
    sta BX,x
    lda py
    clc
    adc #4
    sta BY,x
    lda #FIRE_CD
    sta fire_cd
    inc shots
    rts

kill_player:
    lda #2
    sta PSTATE
    lda DEATH_FLAG
    ora #1
    sta DEATH_FLAG
    lda #DEATH_DELAY
    sta death_timer
    rts

hazards:
    lda py
    cmp #PIT_DEATH
    bcs kill_player
    jsr center_col
    cmp #'^'
    beq @mine
    cmp #'*'
    bne @ceil
@mine:
    lda py
    cmp #MINE_KILL+1
    bcs kill_player
    jsr center_col
@ceil:
    cmp #'='
    beq @laser
    cmp #'*'
    bne @enemies
@laser:
    lda py
    cmp #CEIL_KILL
    bcc kill_player
@enemies:
    ; touching a soldier or turret
    ldx #3
@e:
    lda ETYPE,x
    beq @next
    cmp #3
    beq @next
    lda PX
    clc
    adc #6
    cmp EX,x
    bcc @next
    lda EX,x
    clc
    adc #7
    sta tmp0
    lda PX
    clc
    adc #1
    cmp tmp0
    beq @ytest
    bcs @next
@ytest:
    lda py
    clc
    adc #15
    cmp EY,x
    bcc @next
    lda EY,x
    clc
    adc #15
    cmp py
    bcc @next
    jmp kill_player
@next:
    dex
    bpl @e
    ; enemy bullets (4x4) against the player box x+1..x+6, y+1..y+15
    ldx #1
@b:
    lda EBACT,x
    beq @bnext
    lda PX
    clc
    adc #6
    cmp EBX,x
    bcc @bnext
    lda EBX,x
    clc
    adc #3
    sta tmp0
    lda PX
    clc
    adc #1
    cmp tmp0
    beq @by
    bcs @bnext
@by:
    lda py
    clc
    adc #15
    cmp EBY,x
    bcc @bnext
    lda EBY,x
    clc
    adc #3
    sta tmp0
    lda py
    clc
    adc #1
    cmp tmp0
    beq @hit
    bcs @bnext
@hit:
    jmp kill_player
@bnext:
    dex
    bpl @b
    rts

; ---------------------------------------------------------------- enemies
enemies_tick:
    ldx #3
@e:
    lda ETYPE,x
    bne @active
    jmp @next
@active:
    lda EHIT,x
    cmp #255
    beq @nohit
    inc EHIT,x
@nohit:
    lda ETYPE,x
    cmp #1
    bne @turret
    ; soldier: walks left 1 px every other frame, drops into pits
    lda frame
    and #1
    beq @fall
    dec EX,x
    lda EX,x
    cmp #4
    bcs @fall
    lda #0
    sta ETYPE,x
    jmp @next
@fall:
    lda EY,x
    cmp #GROUND_Y
    bne @drop
    lda EX,x
    clc
    adc #4
    lsr a
    lsr a
    lsr a
    tay
    lda TERRAIN,y
    cmp #' '
    bne @next
@drop:
    inc EY,x
    inc EY,x
    lda EY,x
    cmp #PIT_DEATH
    bcc @next
    lda #0
    sta ETYPE,x
    jmp @next
@turret:
    ; turrets and the gate: HP refills after REGEN frames without a hit
    lda EHIT,x
    cmp #REGEN
    bcc @shoot
    lda ETYPE,x
    cmp #3
    beq @gatehp
    lda #TURRET_HP
    bne @sethp
@gatehp:
    lda #GATE_HP
@sethp:
    sta EHP,x
@shoot:
    lda ETYPE,x
    cmp #2
    bne @next
    dec ETMR,x
    bne @next
    lda #TURRET_PERIOD
    sta ETMR,x
    ldy #0
    lda EBACT
    beq @eb
    iny
    lda EBACT+1
    bne @next
@eb:
    lda #1
    sta EBACT,y
    lda EX,x
    sec
    sbc #4
    sta EBX,y
    lda #202
    sta EBY,y
@next:
    dex
    bmi @end
    jmp @e
@end:
    rts

; player bullets: 6 px/frame to the right, hit the first enemy they touch
bullets_tick:
    ldx #3
@b:
    lda BACT,x
    beq @next
    lda BX,x
    cmp #244
    bcc @move
    lda #0
    sta BACT,x
    beq @next
@move:
    clc
    adc #BULLET_SPEED
    sta BX,x
    ldy #3
@e:
    lda ETYPE,y
    beq @enext
    ; x overlap: BX+3 >= EX and BX <= EX+width-1
    lda BX,x
    clc
    adc #3
    cmp EX,y
    bcc @enext
    lda ETYPE,y
    cmp #3
    bne @w8
    lda #15
    bne @w
@w8:
    lda #7
@w:
    clc
    adc EX,y
    cmp BX,x
    bcc @enext
    ; y overlap: BY in EY-2 .. EY+height-1
    lda ETYPE,y
    cmp #3
    bne @h16
    lda #31
    bne @h
@h16:
    lda #15
@h:
    clc
    adc EY,y
    cmp BY,x
    bcc @enext
    lda BY,x
    clc
    adc #2
    cmp EY,y
    bcc @enext
    jsr hit_enemy
    jmp @next
@enext:
    dey
    bpl @e
@next:
    dex
    bpl @b
    rts

; bullet x hits enemy y
hit_enemy:
    lda #0
    sta BACT,x
    sta EHIT,y
    lda EHP,y
    sec
    sbc #1
    sta EHP,y
    bne @r
    lda ETYPE,y
    sta tmp1
    lda #0
    sta ETYPE,y
    stx tmp2
    lda tmp1
    cmp #1
    bne @t
    lda #1
    jsr add_score
    jmp @done
@t:
    cmp #2
    bne @g
    lda #5
    jsr add_score
    jmp @done
@g:
    lda #1
    sta BOSS_DEFEATED
    lda #20
    jsr add_score
@done:
    ldx tmp2
@r:
    rts

ebullets_tick:
    ldx #1
@b:
    lda EBACT,x
    beq @next
    lda EBX,x
    cmp #6
    bcs @move
    lda #0
    sta EBACT,x
    beq @next
@move:
    sec
    sbc #2
    sta EBX,x
@next:
    dex
    bpl @b
    rts

; A = points / 100
add_score:
    sta tmp0
@loop:
    inc SCORE_LO
    bne @dec
    inc SCORE_HI
@dec:
    ldy #4
@carry:
    lda DIGITS,y
    clc
    adc #1
    cmp #10
    bcc @store
    lda #0
    sta DIGITS,y
    dey
    bpl @carry
    bmi @again
@store:
    sta DIGITS,y
@again:
    dec tmp0
    bne @loop
    rts

; ---------------------------------------------------------------- screens
; ptr = level screen record for (layout, SCREEN)
screen_ptr:
    lda layout
    asl a
    tax
    lda level_table,x
    sta ptr
    lda level_table+1,x
    sta ptr+1
    lda SCREEN
    asl a
    tay
    lda (ptr),y
    tax
    iny
    lda (ptr),y
    sta ptr+1
    stx ptr
    rts

load_screen:
    jsr screen_ptr
    ldy #31
@t:
    lda (ptr),y
    sta TERRAIN,y
    dey
    bpl @t
    lda #0
    ldx #3
@c:
    sta ETYPE,x
    dex
    bpl @c
    sta BACT
    sta BACT+1
    sta BACT+2
    sta BACT+3
    sta EBACT
    sta EBACT+1
    lda SCREEN
    cmp last_screen
    bne @spawn
    lda #$FF
    sta STOP_SCROLL
@spawn:
    ldy #32
    ldx #0
@s:
    lda (ptr),y
    beq @draw
    sta ETYPE,x
    iny
    lda (ptr),y
    sta EX,x
    iny
    lda #GROUND_Y
    sta EY,x
    lda #TURRET_HP
    sta EHP,x
    lda #255
    sta EHIT,x
    lda ETYPE,x
    cmp #1
    bne @notsoldier
    lda #1
    sta EHP,x
@notsoldier:
    cmp #3
    bne @nextslot
    lda #GATE_HP
    sta EHP,x
    lda #GROUND_Y-16
    sta EY,x
@nextslot:
    lda #30
    sta ETMR,x
    inx
    bne @s
@draw:
    jmp draw_screen

; rendering off, whole nametable 0 rewritten, rendering back on at the next NMI
draw_screen:
    jsr ppu_off
    lda #$20
    sta PPUADDR
    lda #$00
    sta PPUADDR
    ldx #64
    jsr blanks
    ldx #0
@hud:
    lda hud_text,x
    sta PPUDATA
    inx
    cpx #32
    bne @hud
    ; rows 3..20 blank (18 rows = 576 tiles)
    ldx #0
    jsr blanks
    ldx #0
    jsr blanks
    ldx #64
    jsr blanks
    ; row 21: struts, row 22: laser bar
    lda #5
    jsr ceiling_row
    lda #4
    jsr ceiling_row
    ; rows 23-24
    ldx #64
    jsr blanks
    ; row 25: mines
    ldx #0
@mine:
    lda TERRAIN,x
    cmp #'^'
    beq @m
    cmp #'*'
    beq @m
    lda #0
    beq @mw
@m:
    lda #3
@mw:
    sta PPUDATA
    inx
    cpx #32
    bne @mine
    lda #1
    jsr ground_row
    lda #2
    jsr ground_row
    lda #2
    jsr ground_row
    lda #2
    jsr ground_row
    ; attributes: rows 20-25 use palette 1 (hazards), the rest palette 0
    ldx #40
    jsr zeros
    ldx #8
    lda #$55
@a5:
    sta PPUDATA
    dex
    bne @a5
    ldx #8
    lda #$05
@a6:
    sta PPUDATA
    dex
    bne @a6
    ldx #8
    jsr zeros
    jmp ppu_on

ceiling_row:
    sta tmp0
    ldx #0
@l:
    lda TERRAIN,x
    cmp #'='
    beq @c
    cmp #'*'
    beq @c
    lda #0
    beq @w
@c:
    lda tmp0
@w:
    sta PPUDATA
    inx
    cpx #32
    bne @l
    rts

ground_row:
    sta tmp0
    ldx #0
@l:
    lda TERRAIN,x
    cmp #' '
    beq @p
    lda tmp0
    bne @w
@p:
    lda #0
@w:
    sta PPUDATA
    inx
    cpx #32
    bne @l
    rts

; X tiles of blank (X=0 means 256)
blanks:
zeros:
    lda #0
@l:
    sta PPUDATA
    dex
    bne @l
    rts

ppu_off:
    lda #1
    sta ppu_busy
    lda #0
    sta PPUMASK
    bit PPUSTATUS
    rts

ppu_on:
    lda #0
    sta ppu_busy
    sta nmi_done             ; an NMI during drawing must not start an extra tick
    rts

write_hud:
    bit PPUSTATUS
    lda #$20
    sta PPUADDR
    lda #$47
    sta PPUADDR
    lda LIVES
    clc
    adc #'0'
    sta PPUDATA
    lda #$20
    sta PPUADDR
    lda #$4F
    sta PPUADDR
    ldx #0
@d:
    lda DIGITS,x
    clc
    adc #'0'
    sta PPUDATA
    inx
    cpx #5
    bne @d
    lda #$20
    sta PPUADDR
    lda #$5D
    sta PPUADDR
    lda LEVEL
    clc
    adc #'1'
    sta PPUDATA
    rts

draw_title:
    jsr clear_nametable
    lda #$21
    sta PPUADDR
    lda #$4C
    sta PPUADDR
    ldx #0
@t:
    lda title_text,x
    beq @p
    sta PPUDATA
    inx
    bne @t
@p:
    lda #$22
    sta PPUADDR
    lda #$0A
    sta PPUADDR
    ldx #0
@s:
    lda start_text,x
    beq @done
    sta PPUDATA
    inx
    bne @s
@done:
    rts

draw_game_over:
    jsr ppu_off
    lda #$21
    sta PPUADDR
    lda #$CB
    sta PPUADDR
    ldx #0
@t:
    lda over_text,x
    beq @done
    sta PPUDATA
    inx
    bne @t
@done:
    jmp ppu_on

clear_nametable:
    bit PPUSTATUS
    lda #$20
    sta PPUADDR
    lda #$00
    sta PPUADDR
    ldy #4
    lda #0
    tax
@l:
    sta PPUDATA
    inx
    bne @l
    dey
    bne @l
    rts

load_palette:
    bit PPUSTATUS
    lda #$3F
    sta PPUADDR
    lda #$00
    sta PPUADDR
    ldx #0
@l:
    lda palette,x
    sta PPUDATA
    inx
    cpx #32
    bne @l
    rts

; ---------------------------------------------------------------- sprites
clear_oam:
    ldx #0
    lda #$F8
@l:
    sta $0200,x
    inx
    bne @l
    rts

; tmp0=y tmp1=tile tmp2=attr tmp3=x
put_sprite:
    ldy oam_i
    lda tmp0
    sta $0200,y
    lda tmp1
    sta $0201,y
    lda tmp2
    sta $0202,y
    lda tmp3
    sta $0203,y
    tya
    clc
    adc #4
    sta oam_i
    rts

build_oam:
    jsr clear_oam
    lda #0
    sta oam_i
    lda LVL_ROUTINE
    bne @play
    rts
@play:
    cmp #$05
    bne @p
    lda GAME_OVER
    beq @p
    rts
@p:
    ; player (blinks while dead)
    lda PSTATE
    cmp #2
    bne @drawp
    lda frame
    and #4
    bne @enemies
@drawp:
    lda py
    cmp #PIT_DEATH
    bcs @enemies
    sec
    sbc #1
    sta tmp0
    lda #1
    sta tmp1
    lda #0
    sta tmp2
    lda PX
    sta tmp3
    jsr put_sprite
    lda tmp0
    clc
    adc #8
    sta tmp0
    lda on_ground
    beq @legs_a
    lda PX
    and #8
    beq @legs_a
    lda #3
    bne @legs
@legs_a:
    lda #2
@legs:
    sta tmp1
    jsr put_sprite
@enemies:
    ldx #3
@e:
    lda ETYPE,x
    bne @draw_e
    jmp @enext
@draw_e:
    lda EX,x
    sta tmp3
    lda EY,x
    sec
    sbc #1
    sta tmp0
    lda ETYPE,x
    cmp #1
    bne @not_soldier
    lda #4
    sta tmp1
    lda #1
    sta tmp2
    jsr put_sprite
    lda tmp0
    clc
    adc #8
    sta tmp0
    lda EX,x
    and #4
    beq @sa
    lda #6
    bne @sb
@sa:
    lda #5
@sb:
    sta tmp1
    jsr put_sprite
    jmp @enext
@not_soldier:
    ; turret and gate flash red for a frame after each hit
    lda #2
    sta tmp2
    lda EHIT,x
    cmp #2
    bcs @pal
    lda #1
    sta tmp2
@pal:
    lda ETYPE,x
    cmp #2
    bne @gate
    lda #7
    sta tmp1
    jsr put_sprite
    lda tmp0
    clc
    adc #8
    sta tmp0
    lda #8
    sta tmp1
    jsr put_sprite
    jmp @enext
@gate:
    lda #12
    sta tmp1
    lda #3
    sta ptr
@rows:
    jsr put_sprite
    lda tmp3
    clc
    adc #8
    sta tmp3
    jsr put_sprite
    lda tmp3
    sec
    sbc #8
    sta tmp3
    lda tmp0
    clc
    adc #8
    sta tmp0
    lda #11
    sta tmp1
    dec ptr
    bpl @rows
@enext:
    dex
    bmi @bullets
    jmp @e
@bullets:
    lda #3
    sta tmp2
    ldx #3
@b:
    lda BACT,x
    beq @bn
    lda BY,x
    sec
    sbc #3
    sta tmp0
    lda #9
    sta tmp1
    lda BX,x
    sec
    sbc #2
    sta tmp3
    jsr put_sprite
@bn:
    dex
    bpl @b
    ldx #1
@eb:
    lda EBACT,x
    beq @ebn
    lda EBY,x
    sec
    sbc #3
    sta tmp0
    lda #10
    sta tmp1
    lda EBX,x
    sec
    sbc #1
    sta tmp3
    jsr put_sprite
@ebn:
    dex
    bpl @eb
    rts

; ---------------------------------------------------------------- data
palette:
    .byte $0F, $17, $1A, $30,  $0F, $06, $16, $28,  $0F, $17, $1A, $30,  $0F, $17, $1A, $30
    .byte $0F, $11, $36, $30,  $0F, $16, $36, $07,  $0F, $00, $10, $16,  $0F, $30, $28, $16

hud_text:  .byte " LIVES 0 SCORE 0000000 LEVEL 1  "
title_text: .byte "OUTPOST", 0
start_text: .byte "PRESS START", 0
over_text:  .byte "GAME OVER", 0

; Terrain codes per 8-px column: '_' ground, ' ' pit, '^' mine, '=' laser ceiling,
; '*' mine under a laser ceiling. Then enemies (type, x) ending with 0:
; 1 soldier, 2 turret, 3 gate (the gate must come first on its screen).
level_table: .word level1, level2
level_len:   .byte 4, 4          ; index of the last screen

level1: .word l1s0, l1s1, l1s2, l1s3, l1s4
level2: .word l2s0, l2s1, l2s2, l2s3, l2s4

l1s0: .byte "____________________    ________"
      .byte 1, 120, 1, 240, 0
l1s1: .byte "__________=====*=====___________"
      .byte 2, 224, 0
l1s2: .byte "_______    __________    _______"
      .byte 1, 160, 1, 248, 0
l1s3: .byte "_____====*====____====*====_____"
      .byte 1, 240, 0
l1s4: .byte "________________________________"
      .byte 3, 216, 1, 180, 0

l2s0: .byte "__________    ______^^__________"
      .byte 1, 200, 2, 232, 0
l2s1: .byte "_____====*====______    ________"
      .byte 1, 248, 0
l2s2: .byte "____^_____    ____====*====_____"
      .byte 2, 150, 0
l2s3: .byte "______    ____    ______________"
      .byte 1, 120, 1, 200, 2, 240, 0
l2s4: .byte "______====*====_________________"
      .byte 3, 216, 2, 160, 0

.segment "VECTORS"
    .word nmi, reset, irq

.segment "CHARS"
    .incbin "build/chr.bin"
